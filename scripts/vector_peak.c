// Clock (dependent register adds: Intel cores since Golden Cove fold add-immediate chains at rename, so
// "add $1" reads 4-5x the clock there) and the throughput of vpdpbusd zmm and vfmadd zmm (12 chains).
// gcc -O2 -mavx512f -mavx512vnni -o /tmp/peak scripts/vector_peak.c && /tmp/peak
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(void){
  long n=1000000000; double best=1e9;
  for(int r=0;r<5;r++){ double t0=now(); long x=0, one=1; for(long i=0;i<n;i+=4){ __asm__ volatile("add %1, %0\n add %1, %0\n add %1, %0\n add %1, %0" : "+r"(x) : "r"(one)); } double dt=now()-t0; if(dt<best)best=dt; }
  double ghz=n/best/1e9; printf("clock (dependent adds): %.2f GHz\n", ghz);
  __m512i u=_mm512_set1_epi32(0x01020304), w=_mm512_set1_epi32(0x05060708);
  __m512i a0=_mm512_set1_epi32(0);
  __m512i a1=_mm512_set1_epi32(1);
  __m512i a2=_mm512_set1_epi32(2);
  __m512i a3=_mm512_set1_epi32(3);
  __m512i a4=_mm512_set1_epi32(4);
  __m512i a5=_mm512_set1_epi32(5);
  __m512i a6=_mm512_set1_epi32(6);
  __m512i a7=_mm512_set1_epi32(7);
  __m512i a8=_mm512_set1_epi32(8);
  __m512i a9=_mm512_set1_epi32(9);
  __m512i a10=_mm512_set1_epi32(10);
  __m512i a11=_mm512_set1_epi32(11);
  long m=100000000; best=1e9;
  for(int r=0;r<5;r++){ double t0=now(); for(long i=0;i<m;i++){ a0=_mm512_dpbusd_epi32(a0,u,w); a1=_mm512_dpbusd_epi32(a1,u,w); a2=_mm512_dpbusd_epi32(a2,u,w); a3=_mm512_dpbusd_epi32(a3,u,w); a4=_mm512_dpbusd_epi32(a4,u,w); a5=_mm512_dpbusd_epi32(a5,u,w); a6=_mm512_dpbusd_epi32(a6,u,w); a7=_mm512_dpbusd_epi32(a7,u,w); a8=_mm512_dpbusd_epi32(a8,u,w); a9=_mm512_dpbusd_epi32(a9,u,w); a10=_mm512_dpbusd_epi32(a10,u,w); a11=_mm512_dpbusd_epi32(a11,u,w); __asm__ volatile("" : "+v"(a0),"+v"(a1),"+v"(a2),"+v"(a3),"+v"(a4),"+v"(a5),"+v"(a6),"+v"(a7),"+v"(a8),"+v"(a9),"+v"(a10),"+v"(a11)); } double dt=now()-t0; if(dt<best)best=dt; }
  printf("vpdpbusd zmm: %.2f per cycle\n", 12.0*m/best/1e9/ghz);
  __m512 x=_mm512_set1_ps(1.0001f), y=_mm512_set1_ps(0.9999f);
  __m512 f0=_mm512_set1_ps(0);
  __m512 f1=_mm512_set1_ps(1);
  __m512 f2=_mm512_set1_ps(2);
  __m512 f3=_mm512_set1_ps(3);
  __m512 f4=_mm512_set1_ps(4);
  __m512 f5=_mm512_set1_ps(5);
  __m512 f6=_mm512_set1_ps(6);
  __m512 f7=_mm512_set1_ps(7);
  __m512 f8=_mm512_set1_ps(8);
  __m512 f9=_mm512_set1_ps(9);
  __m512 f10=_mm512_set1_ps(10);
  __m512 f11=_mm512_set1_ps(11);
  best=1e9;
  for(int r=0;r<5;r++){ double t0=now(); for(long i=0;i<m;i++){ f0=_mm512_fmadd_ps(f0,x,y); f1=_mm512_fmadd_ps(f1,x,y); f2=_mm512_fmadd_ps(f2,x,y); f3=_mm512_fmadd_ps(f3,x,y); f4=_mm512_fmadd_ps(f4,x,y); f5=_mm512_fmadd_ps(f5,x,y); f6=_mm512_fmadd_ps(f6,x,y); f7=_mm512_fmadd_ps(f7,x,y); f8=_mm512_fmadd_ps(f8,x,y); f9=_mm512_fmadd_ps(f9,x,y); f10=_mm512_fmadd_ps(f10,x,y); f11=_mm512_fmadd_ps(f11,x,y); __asm__ volatile("" : "+v"(f0),"+v"(f1),"+v"(f2),"+v"(f3),"+v"(f4),"+v"(f5),"+v"(f6),"+v"(f7),"+v"(f8),"+v"(f9),"+v"(f10),"+v"(f11)); } double dt=now()-t0; if(dt<best)best=dt; }
  printf("vfmadd zmm: %.2f per cycle\n", 12.0*m/best/1e9/ghz);
  return (int)((_mm512_reduce_add_epi32(a0)+_mm512_reduce_add_epi32(a1)+_mm512_reduce_add_epi32(a2)+_mm512_reduce_add_epi32(a3)+_mm512_reduce_add_epi32(a4)+_mm512_reduce_add_epi32(a5)+_mm512_reduce_add_epi32(a6)+_mm512_reduce_add_epi32(a7)+_mm512_reduce_add_epi32(a8)+_mm512_reduce_add_epi32(a9)+_mm512_reduce_add_epi32(a10)+_mm512_reduce_add_epi32(a11))+(_mm512_reduce_add_ps(f0)+_mm512_reduce_add_ps(f1)+_mm512_reduce_add_ps(f2)+_mm512_reduce_add_ps(f3)+_mm512_reduce_add_ps(f4)+_mm512_reduce_add_ps(f5)+_mm512_reduce_add_ps(f6)+_mm512_reduce_add_ps(f7)+_mm512_reduce_add_ps(f8)+_mm512_reduce_add_ps(f9)+_mm512_reduce_add_ps(f10)+_mm512_reduce_add_ps(f11)))&1;
}
