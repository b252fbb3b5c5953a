// Peak rate of the Ampere-style warp-level tensor instructions (mma.sync) on the visible GPU: int8 m16n8k32 (what
// llama.cpp's quantized prompt kernels, MMQ, issue) and fp16 m16n8k16 with fp32 accumulation, from registers only,
// eight independent accumulators per warp, 8 blocks of 4 warps per SM; best of 5 timed launches after one warm-up.
// On Hopper the datasheet's tensor rates need the warpgroup instructions (wgmma), which llama.cpp does not issue:
// this measures the ceiling its kernels face there. Built and run by scripts/gpu_llamacpp.sh (docs/benchmarks.md):
//     nvcc -O3 -arch=sm_90 -o mma_sync_rate bench/cuda/mma_sync_rate.cu && ./mma_sync_rate
#include <cstdio>
#include <cuda_runtime.h>
constexpr int ILP = 8;
__global__ void mma_s8(int iters, int *out) {
  unsigned a0 = threadIdx.x, a1 = a0 * 3u, a2 = a0 * 5u, a3 = a0 * 7u, b0 = a0 * 11u, b1 = a0 * 13u;
  int acc[ILP][4] = {};
  for (int i = 0; i < iters; i++) {
#pragma unroll
    for (int j = 0; j < ILP; j++)
      asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                   : "+r"(acc[j][0]), "+r"(acc[j][1]), "+r"(acc[j][2]), "+r"(acc[j][3])
                   : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
  int s = 0;
  for (int j = 0; j < ILP; j++) s += acc[j][0] + acc[j][1] + acc[j][2] + acc[j][3];
  if (s == 0x7fffffff) out[0] = s;
}
__global__ void mma_f16(int iters, float *out) {
  unsigned a0 = 0x3c003c00u ^ threadIdx.x, a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0;
  float acc[ILP][4] = {};
  for (int i = 0; i < iters; i++) {
#pragma unroll
    for (int j = 0; j < ILP; j++)
      asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                   : "+f"(acc[j][0]), "+f"(acc[j][1]), "+f"(acc[j][2]), "+f"(acc[j][3])
                   : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
  float s = 0;
  for (int j = 0; j < ILP; j++) s += acc[j][0] + acc[j][1] + acc[j][2] + acc[j][3];
  if (s == 12345.f) out[0] = s;
}
int main() {
  cudaDeviceProp p;
  cudaGetDeviceProperties(&p, 0);
  int blocks = p.multiProcessorCount * 8, threads = 128, iters = 200000;
  int *oi; float *of;
  cudaMalloc(&oi, 4); cudaMalloc(&of, 4);
  cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
  for (int kind = 0; kind < 2; kind++) {
    double best = 0;
    for (int rep = 0; rep < 6; rep++) {
      cudaEventRecord(e0);
      if (kind == 0) mma_s8<<<blocks, threads>>>(iters, oi); else mma_f16<<<blocks, threads>>>(iters, of);
      cudaEventRecord(e1); cudaEventSynchronize(e1);
      float ms; cudaEventElapsedTime(&ms, e0, e1);
      double ops = (double)blocks * (threads / 32) * iters * ILP * (kind == 0 ? 2.0 * 16 * 8 * 32 : 2.0 * 16 * 8 * 16);
      double rate = ops / (ms * 1e-3) / 1e12;
      if (rep > 0 && rate > best) best = rate;
      printf("%s rep %d: %.3f ms, %.1f T(FL)OPS\n", kind == 0 ? "int8 mma.sync m16n8k32" : "fp16 mma.sync m16n8k16 f32acc", rep, ms, rate);
    }
    printf("BEST %s %.1f\n", kind == 0 ? "int8_mma_sync_tops" : "fp16_mma_sync_tflops", best);
  }
  printf("device %s, %d SMs, %s\n", p.name, p.multiProcessorCount, cudaGetErrorString(cudaGetLastError()));
  return 0;
}
