// The floors of DESIGN §5 on this CPU: one core's read bandwidth per buffer size.
// gcc -O2 -mavx512f -o /tmp/bw scripts/read_bandwidth.c && /tmp/bw
// Read bandwidth of one core: sums a buffer of each size with 8 independent
// vector accumulators, repeatedly; prints the best GB/s of many passes.
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
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
        __m512 s0=_mm512_setzero_ps(),s1=s0,s2=s0,s3=s0,s4=s0,s5=s0,s6=s0,s7=s0;
        for(size_t i=0;i<n;i+=128){
          s0=_mm512_add_ps(s0,_mm512_load_ps(a+i)); s1=_mm512_add_ps(s1,_mm512_load_ps(a+i+16));
          s2=_mm512_add_ps(s2,_mm512_load_ps(a+i+32)); s3=_mm512_add_ps(s3,_mm512_load_ps(a+i+48));
          s4=_mm512_add_ps(s4,_mm512_load_ps(a+i+64)); s5=_mm512_add_ps(s5,_mm512_load_ps(a+i+80));
          s6=_mm512_add_ps(s6,_mm512_load_ps(a+i+96)); s7=_mm512_add_ps(s7,_mm512_load_ps(a+i+112));
        }
        sink=_mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s0,s1),_mm512_add_ps(s2,s3)),_mm512_add_ps(_mm512_add_ps(s4,s5),_mm512_add_ps(s6,s7))));
      }
      double dt=now()-t0; double gbs=(double)(passes/7+1)*n*4/dt/1e9; if(gbs>best)best=gbs;
    }
    printf("%8zu KiB  %7.1f GB/s\n", sizes[si]>>10, best); fflush(stdout); free(a);
  }
  return 0;
}
