// The floors of DESIGN §5 on this CPU: one core's read bandwidth per buffer size.
// gcc -O2 -mavx512f -o /tmp/bw scripts/read_bandwidth.c && /tmp/bw   (AVX-512 CPUs)
// gcc -O2 -mavx2 -o /tmp/bw scripts/read_bandwidth.c && /tmp/bw      (AVX2 CPUs)
// Read bandwidth of one core: sums a buffer of each size with 8 independent
// vector accumulators, repeatedly; prints the best GB/s of many passes.
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef __AVX512F__
typedef __m512 V; enum { L = 16 };
#define ZERO _mm512_setzero_ps
#define LOAD _mm512_load_ps
#define ADD _mm512_add_ps
static float hsum(V v){ return _mm512_reduce_add_ps(v); }
#else
typedef __m256 V; enum { L = 8 };
#define ZERO _mm256_setzero_ps
#define LOAD _mm256_load_ps
#define ADD _mm256_add_ps
static float hsum(V v){ float t[8]; _mm256_storeu_ps(t, v); return t[0]+t[1]+t[2]+t[3]+t[4]+t[5]+t[6]+t[7]; }
#endif
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(void){
  size_t sizes[]={32<<10,256<<10,512<<10,768<<10,1<<20,2<<20,4<<20,8<<20,16<<20,24<<20,32<<20,64<<20,256<<20};
  for(int si=0;si<13;si++){
    size_t n=sizes[si]/4; float*a=aligned_alloc(64,n*4); for(size_t i=0;i<n;i++)a[i]=1e-6f*(i&7);
    double best=0; size_t passes = (size_t)(2e9/(n*4))+3; if(passes>20000)passes=20000;
    volatile float sink;
    for(int rep=0;rep<7;rep++){
      double t0=now();
      for(size_t p=0;p<passes/7+1;p++){
        V s0=ZERO(),s1=s0,s2=s0,s3=s0,s4=s0,s5=s0,s6=s0,s7=s0;
        for(size_t i=0;i<n;i+=8*L){
          s0=ADD(s0,LOAD(a+i)); s1=ADD(s1,LOAD(a+i+L));
          s2=ADD(s2,LOAD(a+i+2*L)); s3=ADD(s3,LOAD(a+i+3*L));
          s4=ADD(s4,LOAD(a+i+4*L)); s5=ADD(s5,LOAD(a+i+5*L));
          s6=ADD(s6,LOAD(a+i+6*L)); s7=ADD(s7,LOAD(a+i+7*L));
        }
        sink=hsum(ADD(ADD(ADD(s0,s1),ADD(s2,s3)),ADD(ADD(s4,s5),ADD(s6,s7))));
      }
      double dt=now()-t0; double gbs=(double)(passes/7+1)*n*4/dt/1e9; if(gbs>best)best=gbs;
    }
    printf("%8zu KiB  %7.1f GB/s\n", sizes[si]>>10, best); fflush(stdout); free(a);
  }
  return 0;
}
