"""The Cortex-M boards edgernn builds and runs self-tests for, one per target, all in QEMU.

Each :class:`Board` says how to compile for the core (the flags Debian's ``arm-none-eabi-gcc``
12 has a multilib for), where the board's code and data memories are (the linker script), how
fast SysTick counts (the processor clock: under ``-icount shift=S`` one instruction lasts 2^S ns,
so SysTick advances 2^S * hz / 1e9 ticks per instruction) and what QEMU 7.2 calls the machine.

| target        | QEMU machine  | core       | code memory             | data memory              | clock  |
| ------------- | ------------- | ---------- | ----------------------- | ------------------------ | ------ |
| cortex-m0plus | microbit      | Cortex-M0  | 256 KiB flash at 0      | 16 KiB SRAM at 0x2000_0000 | 16 MHz |
| cortex-m3     | mps2-an385    | Cortex-M3  | 4 MiB SSRAM1 at 0       | 4 MiB SSRAM2/3 at 0x2000_0000 | 25 MHz |
| cortex-m4     | mps2-an386    | Cortex-M4F | 4 MiB SSRAM1 at 0       | 4 MiB SSRAM2/3 at 0x2000_0000 | 25 MHz |
| cortex-m7     | mps2-an500    | Cortex-M7  | 4 MiB SSRAM1 at 0       | 4 MiB SSRAM2/3 at 0x2000_0000 | 25 MHz |
| cortex-m33    | mps2-an505    | Cortex-M33 | 4 MiB SSRAM1, secure alias 0x1000_0000 | 4 MiB SSRAM2/3, secure alias 0x3800_0000 | 20 MHz |
| cortex-m55    | mps3-an547    | Cortex-M55 (Helium) | 512 KiB ITCM, secure alias 0x1000_0000 | 512 KiB DTCM, secure alias 0x3000_0000 | 32 MHz |

The micro:bit is QEMU's only ARMv6-M board: its nRF51 is a Cortex-M0, which runs the
``-mcpu=cortex-m0plus`` code unchanged (the same Thumb instruction set), with the 16 KiB of
RAM an M0+ part typically has; the self-test gets 4 KiB of stack and 2 KiB of heap there.
The Armv8-M boards start in the Secure state, where the secure aliases are the memories.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Board:
    target: str
    machine: str  # QEMU -M
    description: str  # the board and core, for comments and READMEs
    cpu_flags: tuple[str, ...]
    flash_origin: int
    flash_bytes: int
    ram_origin: int
    ram_bytes: int
    clock_hz: int  # SysTick's clock (the processor clock) as QEMU models it
    stack_bytes: int = 8192
    heap_bytes: int = 4096

    @property
    def linker_script(self) -> str:
        return self.machine.replace("-", "_") + ".ld"

    @property
    def fpu(self) -> bool:
        return "-mfloat-abi=hard" in self.cpu_flags


_K, _M = 1024, 1024 * 1024
BOARDS = {b.target: b for b in (
    Board("cortex-m0plus", "microbit", "BBC micro:bit (nRF51822, Cortex-M0; code built for the Cortex-M0+)",
          ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"), 0x00000000, 256 * _K, 0x20000000, 16 * _K,
          16_000_000, stack_bytes=4096, heap_bytes=2048),
    Board("cortex-m3", "mps2-an385", "Arm MPS2 AN385 (Cortex-M3)",
          ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"), 0x00000000, 4 * _M, 0x20000000, 4 * _M, 25_000_000),
    Board("cortex-m4", "mps2-an386", "Arm MPS2 AN386 (Cortex-M4F)",
          ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"), 0x00000000, 4 * _M, 0x20000000,
          4 * _M, 25_000_000),
    Board("cortex-m7", "mps2-an500", "Arm MPS2 AN500 (Cortex-M7)",
          ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"), 0x00000000, 4 * _M, 0x20000000,
          4 * _M, 25_000_000),
    Board("cortex-m33", "mps2-an505", "Arm MPS2 AN505 (Cortex-M33, Secure state)",
          ("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"), 0x10000000, 4 * _M,
          0x38000000, 4 * _M, 20_000_000),
    Board("cortex-m55", "mps3-an547", "Arm MPS3 AN547 (Cortex-M55 with Helium, Secure state)",
          ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"), 0x10000000, 512 * _K, 0x30000000, 512 * _K,
          32_000_000),
)}
