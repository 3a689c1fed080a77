// Clock (dependent adds) and the throughput, on AVX2 + FMA, of what the kernels' inner loops are
// made of: vfmadd ymm (12 chains); the i8 sign-trick dot (vpsignb, vpmaddubsw, vpmaddwd, vpaddd
// per 32 products, 6 chains); the f16 widening (vcvtph2ps + vfmadd); the i8w widening
// (vpmovsxbd + vcvtdq2ps + vfmadd); the bf16 widening of a k-pair (vpslld / vpand + 2 vfmadd).
// gcc -O2 -mavx2 -mfma -mf16c -o /tmp/peak2 scripts/vector_peak_avx2.c && /tmp/peak2
#include <immintrin.h>
#include <stdio.h>
#include <stdint.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define KEEP(v) __asm__ volatile("" : "+x"(v))
static double ghz;
static void report(const char*name, double per_iter_ops, long m, double best){
  printf("%-48s %.2f per cycle\n", name, per_iter_ops*m/best/1e9/ghz);
}
int main(void){
  long n=1000000000; double best=1e9;
  for(int r=0;r<5;r++){ double t0=now(); long x=0, one=1; for(long i=0;i<n;i+=4){ __asm__ volatile("add %1, %0\n add %1, %0\n add %1, %0\n add %1, %0" : "+r"(x) : "r"(one)); } double dt=now()-t0; if(dt<best)best=dt; }
  ghz=n/best/1e9; printf("clock (dependent adds): %.2f GHz\n", ghz);
  long m=100000000;
  // FMA ymm, 12 chains
  { __m256 x=_mm256_set1_ps(1.0001f), y=_mm256_set1_ps(0.9999f);
    __m256 f0=_mm256_set1_ps(0),f1=_mm256_set1_ps(1),f2=_mm256_set1_ps(2),f3=_mm256_set1_ps(3),f4=_mm256_set1_ps(4),f5=_mm256_set1_ps(5),
           f6=_mm256_set1_ps(6),f7=_mm256_set1_ps(7),f8=_mm256_set1_ps(8),f9=_mm256_set1_ps(9),f10=_mm256_set1_ps(10),f11=_mm256_set1_ps(11);
    best=1e9;
#define F(v) v=_mm256_fmadd_ps(v,x,y)
    for(int r=0;r<5;r++){ double t0=now(); for(long i=0;i<m;i++){
      F(f0);F(f1);F(f2);F(f3);F(f4);F(f5);F(f6);F(f7);F(f8);F(f9);F(f10);F(f11);
      KEEP(f0);KEEP(f1);KEEP(f2);KEEP(f3);KEEP(f4);KEEP(f5);KEEP(f6);KEEP(f7);KEEP(f8);KEEP(f9);KEEP(f10);KEEP(f11); } double dt=now()-t0; if(dt<best)best=dt; }
    report("vfmadd231ps ymm (instructions)", 12, m, best); }
  // sign-trick dot: 4 ops per 32 products, 6 chains, w varies (from registers)
  { __m256i x=_mm256_set1_epi32(0x7f81057f), ones=_mm256_set1_epi16(1);
    __m256i w0=_mm256_set1_epi32(0x01020304),w1=_mm256_set1_epi32(0x02030405),w2=_mm256_set1_epi32(0x03040506),
            w3=_mm256_set1_epi32(0x04050607),w4=_mm256_set1_epi32(0x05060708),w5=_mm256_set1_epi32(0x06070809);
    __m256i a0=_mm256_setzero_si256(),a1=a0,a2=a0,a3=a0,a4=a0,a5=a0;
    __m256i ax=_mm256_abs_epi8(x);
    best=1e9;
#define D(a,w) { __m256i s=_mm256_sign_epi8(w,x); __m256i p=_mm256_maddubs_epi16(ax,s); a=_mm256_add_epi32(a,_mm256_madd_epi16(p,ones)); }
    for(int r=0;r<5;r++){ double t0=now(); for(long i=0;i<m;i++){
      D(a0,w0);D(a1,w1);D(a2,w2);D(a3,w3);D(a4,w4);D(a5,w5);
      KEEP(a0);KEEP(a1);KEEP(a2);KEEP(a3);KEEP(a4);KEEP(a5);KEEP(w0);KEEP(w1);KEEP(w2);KEEP(w3);KEEP(w4);KEEP(w5); } double dt=now()-t0; if(dt<best)best=dt; }
    report("i8 sign-trick dot ymm (32 products each)", 6, m, best); }
  // f16 widening from memory + FMA
  { static uint16_t buf[4096] __attribute__((aligned(64))); for(int i=0;i<4096;i++) buf[i]=0x3c00;
    __m256 x=_mm256_set1_ps(1.0001f); __m256 f0=_mm256_setzero_ps(),f1=f0,f2=f0,f3=f0,f4=f0,f5=f0,f6=f0,f7=f0;
    long mm=m/4; best=1e9;
    for(int r=0;r<5;r++){ double t0=now(); for(long i=0;i<mm;i++){ const uint16_t*p=buf+((i*128)&4095);
#define H(j,v) v=_mm256_fmadd_ps(_mm256_cvtph_ps(_mm_load_si128((const __m128i*)(p+8*j))),x,v)
      H(0,f0);H(1,f1);H(2,f2);H(3,f3);H(4,f4);H(5,f5);H(6,f6);H(7,f7);
      KEEP(f0);KEEP(f1);KEEP(f2);KEEP(f3);KEEP(f4);KEEP(f5);KEEP(f6);KEEP(f7); } double dt=now()-t0; if(dt<best)best=dt; }
    report("f16: vcvtph2ps m128 + vfmadd (8 weights each)", 8, mm, best); }
  // i8w widening
  { static int8_t buf[4096] __attribute__((aligned(64))); for(int i=0;i<4096;i++) buf[i]=(int8_t)(i*7);
    __m256 x=_mm256_set1_ps(1.0001f); __m256 f0=_mm256_setzero_ps(),f1=f0,f2=f0,f3=f0,f4=f0,f5=f0,f6=f0,f7=f0;
    long mm=m/4; best=1e9;
    for(int r=0;r<5;r++){ double t0=now(); for(long i=0;i<mm;i++){ const int8_t*p=buf+((i*64)&4095);
#define Q(j,v) v=_mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(p+8*j)))),x,v)
      Q(0,f0);Q(1,f1);Q(2,f2);Q(3,f3);Q(4,f4);Q(5,f5);Q(6,f6);Q(7,f7);
      KEEP(f0);KEEP(f1);KEEP(f2);KEEP(f3);KEEP(f4);KEEP(f5);KEEP(f6);KEEP(f7); } double dt=now()-t0; if(dt<best)best=dt; }
    report("i8w: vpmovsxbd + vcvtdq2ps + vfmadd (8 each)", 8, mm, best); }
  // bf16 k-pair: one 256-bit load = 16 bf16 (8 pairs): lo = x<<16, hi = x & 0xffff0000, 2 FMA
  { static uint32_t buf[4096] __attribute__((aligned(64))); for(int i=0;i<4096;i++) buf[i]=0x3f803f80u;
    __m256 x=_mm256_set1_ps(1.0001f), y=_mm256_set1_ps(0.999f); __m256 f0=_mm256_setzero_ps(),f1=f0,f2=f0,f3=f0,f4=f0,f5=f0,f6=f0,f7=f0;
    __m256i hm=_mm256_set1_epi32((int)0xffff0000u);
    long mm=m/4; best=1e9;
    for(int r=0;r<5;r++){ double t0=now(); for(long i=0;i<mm;i++){ const uint32_t*p=buf+((i*32)&4095);
#define B(j,lo,hi) { __m256i v=_mm256_load_si256((const __m256i*)(p+8*j)); \
        lo=_mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v,16)),x,lo); \
        hi=_mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v,hm)),y,hi); }
      B(0,f0,f1);B(1,f2,f3);B(2,f4,f5);B(3,f6,f7);
      KEEP(f0);KEEP(f1);KEEP(f2);KEEP(f3);KEEP(f4);KEEP(f5);KEEP(f6);KEEP(f7); } double dt=now()-t0; if(dt<best)best=dt; }
    report("bf16 k-pair: (vpslld | vpand) + vfmadd (8 each)", 8, mm, best); }
  return 0;
}
