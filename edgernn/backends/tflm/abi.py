"""Sizes of the TFLM (and CMSIS-NN) structs that live in the tensor arena, per ABI.

TFLM's arena holds, besides the tensors, bookkeeping structs whose size depends on the
compiler's ABI: pointers are 4 bytes on a Cortex-M and 8 on a 64-bit host, and
arm-none-eabi-gcc uses *short enums* (an enum takes the smallest integer type that holds its
values), so a ``TfLiteTensor`` is 32 bytes on a Cortex-M4, 40 with ``-fno-short-enums`` and 64 on
x86-64. The figures below were measured by compiling field-for-field replicas of TFLM HEAD's
and CMSIS-NN's structs with ``g++`` (x86-64) and ``arm-none-eabi-g++ -mcpu=cortex-m4`` and
reading ``sizeof``/``alignof``; the x86-64 column was then checked against the PyPI
``tflite_micro`` runtime, whose recorded head and tail :mod:`.allocator` reproduces byte for
byte, and the Cortex-M column against four arenas measured on a Cortex-M4 (reference kernels
and CMSIS-NN, LSTM(32) and LSTM(128)).

Each row: ``(x86-64, cortex-m, cortex-m int enums)`` as ``(size, alignment)`` in bytes, and
the TFLM source the struct is declared in (paths under ``tensorflow/lite/``).
"""

from __future__ import annotations

from dataclasses import dataclass

# struct: (x86-64 runtime, Cortex-M gcc short enums, Cortex-M int enums), where it is declared
STRUCTS: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[int, int], str]] = {
    # --- the allocator's own objects (placed in the arena by MicroInterpreter(model, resolver, arena, n))
    "SingleArenaBufferAllocator": ((72, 8), (36, 4), (36, 4), "micro/arena_allocator/single_arena_buffer_allocator.h"),
    "GreedyMemoryPlanner": ((72, 8), (44, 4), (44, 4), "micro/memory_planner/greedy_memory_planner.h"),
    "MicroAllocator": ((72, 8), (36, 4), (36, 4), "micro/micro_allocator.h"),
    "MicroBuiltinDataAllocator": ((16, 8), (8, 4), (8, 4), "micro/micro_allocator.cc"),
    "SubgraphAllocations": ((24, 8), (8, 4), (8, 4), "micro/micro_allocator.h (+1 pointer with USE_TFLM_COMPRESSION)"),
    # --- per tensor, per node, per scratch buffer
    "TfLiteEvalTensor": ((24, 8), (12, 4), (12, 4), "c/common.h"),
    "NodeAndRegistration": ((64, 8), (32, 4), (32, 4), "micro/micro_allocator.h (TfLiteNode + pointer)"),
    "TfLiteTensor": ((64, 8), (32, 4), (40, 4), "c/common.h, TF_LITE_STATIC_MEMORY"),
    "TfLiteAffineQuantization": ((24, 8), (12, 4), (12, 4), "c/common.h"),
    "ScratchBufferHandle": ((8, 8), (4, 4), (4, 4), "micro/micro_allocator.h"),
    "ScratchBufferRequest": ((16, 8), (12, 4), (12, 4), "micro/micro_allocator.h"),
    "AllocationInfo": ((32, 8), (24, 4), (24, 4), "micro/micro_allocation_info.h"),
    # --- builtin option structs, allocated by the flatbuffer parser (core/api/flatbuffer_conversions.cc)
    "UnidirectionalSequenceLSTMParams": ((16, 4), (16, 4), (16, 4), "c/builtin_op_data.h"),
    "FullyConnectedParams": ((32, 8), (16, 4), (24, 4), "c/builtin_op_data.h (HEAD: + a pointer and a length)"),
    "SoftmaxParams(builtin)": ((4, 4), (4, 4), (4, 4), "c/builtin_op_data.h"),
    "StridedSliceParams(builtin)": ((24, 4), (24, 4), (24, 4), "c/builtin_op_data.h"),
    "AddParams": ((8, 4), (2, 1), (8, 4), "c/builtin_op_data.h (activation enum + bool)"),
    "SubParams": ((8, 4), (2, 1), (8, 4), "c/builtin_op_data.h"),
    "MulParams": ((4, 4), (1, 1), (4, 4), "c/builtin_op_data.h"),
    "ConcatenationParams(builtin)": ((8, 4), (8, 4), (8, 4), "c/builtin_op_data.h"),
    "ReshapeParams": ((36, 4), (36, 4), (36, 4), "c/builtin_op_data.h (int32 shape[8] + count)"),
    "SqueezeParams": ((36, 4), (36, 4), (36, 4), "c/builtin_op_data.h"),
    "SplitParams": ((4, 4), (4, 4), (4, 4), "c/builtin_op_data.h (num_splits)"),
    "SplitVParams": ((4, 4), (4, 4), (4, 4), "c/builtin_op_data.h (num_splits)"),
    "CastParams": ((8, 4), (2, 1), (8, 4), "c/builtin_op_data.h (two TfLiteType enums)"),
    "ConvParams": ((28, 4), (28, 4), (28, 4), "c/builtin_op_data.h"),
    "DepthwiseConvParams": ((28, 4), (28, 4), (28, 4), "c/builtin_op_data.h"),
    "PoolParams": ((40, 4), (40, 4), (40, 4), "c/builtin_op_data.h"),
    "ReducerParams": ((1, 1), (1, 1), (1, 1), "c/builtin_op_data.h"),
    "WhileParams": ((8, 4), (8, 4), (8, 4), "c/builtin_op_data.h"),
    # --- kernels' OpData (AllocatePersistentBuffer in each kernel's Init, 16-byte aligned slots)
    "OpDataLSTM": ((688, 8), (688, 8), (688, 8), "micro/kernels/lstm_shared.h (pointer-free)"),
    "CmsisLSTMOpData": ((1008, 8), (912, 8), (912, 8), "micro/kernels/cmsis_nn/unidirectional_sequence_lstm.cc"),
    "OpDataFullyConnected": ((72, 8), (48, 4), (48, 4), "micro/kernels/fully_connected.h (+8 with compression)"),
    "CmsisFCOpData": ((120, 8), (76, 4), (76, 4), "micro/kernels/cmsis_nn/fully_connected.cc"),
    "SoftmaxOpData": ((80, 8), (56, 8), (56, 8), "kernels/internal/types.h SoftmaxParams"),
    "CmsisSoftmaxOpData": ((88, 8), (64, 8), (64, 8), "micro/kernels/cmsis_nn/softmax.cc"),
    "StridedSliceOpData": ((84, 4), (84, 4), (84, 4), "kernels/internal/types.h StridedSliceParams"),
    "OpDataAdd": ((60, 4), (60, 4), (60, 4), "micro/kernels/add.h"),
    "OpDataSub": ((52, 4), (52, 4), (52, 4), "micro/kernels/sub.h"),
    "OpDataMul": ((36, 4), (36, 4), (36, 4), "micro/kernels/mul.h"),
    "OpDataLogistic": ((16, 4), (16, 4), (16, 4), "micro/kernels/logistic.h (tanh.cc: the same fields)"),
    "ReluOpData": ((28, 4), (28, 4), (28, 4), "micro/kernels/activations.h (ReluParams)"),
    "ComparisonOpData": ((32, 4), (32, 4), (32, 4), "micro/kernels/comparisons.cc"),
    "WhileOpData": ((8, 4), (8, 4), (8, 4), "micro/kernels/while.cc"),
    "OpDataQuantize": ((32, 8), (32, 8), (32, 8), "micro/kernels/quantize.h"),
    "PadOpData": ((56, 4), (56, 4), (56, 4), "micro/kernels/pad.h"),
    "ConcatenationOpData": ((40, 8), (24, 4), (24, 4), "kernels/internal/types.h ConcatenationParams"),
    "OpDataConv": ((80, 8), (56, 4), (56, 4), "micro/kernels/conv.h (+8 with compression)"),
    "CmsisConvOpData": ((88, 8), (60, 4), (60, 4), "micro/kernels/cmsis_nn/conv.cc"),
    "OpDataPooling": ((32, 4), (32, 4), (32, 4), "micro/kernels/pooling.h"),
    "CmsisPoolOpData": ((36, 4), (36, 4), (36, 4), "micro/kernels/cmsis_nn/pooling.cc"),
    "OpDataReduce": ((44, 4), (44, 4), (44, 4), "micro/kernels/reduce.h (HEAD: 44 B, 36 in 2021)"),
}


@dataclass(frozen=True)
class ABI:
    """A compiler ABI TFLM is built with, and how the application creates the interpreter."""

    name: str
    column: int  # which column of STRUCTS
    pointer: int
    recording: bool  # tflite_micro.runtime's RecordingMicroAllocator (its objects are bigger)
    description: str

    def size(self, struct: str) -> int:
        return STRUCTS[struct][self.column][0]

    def align(self, struct: str) -> int:
        return STRUCTS[struct][self.column][1]

    def struct(self, struct: str) -> tuple[int, int]:
        return STRUCTS[struct][self.column]


ABIS = {
    "x86-64": ABI("x86-64", 0, 8, True, "the PyPI tflite_micro runtime: 64-bit, recording allocator, "
                  "USE_TFLM_COMPRESSION"),
    "cortex-m": ABI("cortex-m", 1, 4, False, "arm-none-eabi-gcc (short enums), TF_LITE_STATIC_MEMORY"),
    "cortex-m-int-enums": ABI("cortex-m-int-enums", 2, 4, False, "a 32-bit Cortex-M build with -fno-short-enums"),
}

# The recording allocator of the Python runtime keeps four more pointers in its arena allocator
# and 8 RecordedAllocation records (3 words each) plus a pointer in its MicroAllocator
# (micro/recording_micro_allocator.h, micro/arena_allocator/recording_single_arena_buffer_allocator.h).
RECORDING_ARENA_ALLOCATOR_POINTERS = 4
RECORDING_MICRO_ALLOCATOR_WORDS = 1 + 8 * 3
