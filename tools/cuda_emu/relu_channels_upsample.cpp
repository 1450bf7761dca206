#include "emu.h"
#include "../../kernels/common.cuh"
#include "gen/relu.cu"
#undef INSTANTIATE
#include "gen/channels.cu"
#undef INSTANTIATE
#include "gen/upsample.cu"
#include "util.h"
// Source index as the CPU twin (src/backend/cpu/upsample.rs::bilinear_src) computes it, in f32.
double srcidx(int o, int in, int out, int ac, int* i0, int* i1) { float s; if (ac) { float sc=out>1?(float)(in-1)/(float)(out-1):0.0f; s=sc*(float)o; } else { float sc=(float)in/(float)out; s=sc*((float)o+0.5f)-0.5f; if (s<0) s=0; } *i0=std::min((int)s,in-1); *i1=*i0<in-1?*i0+1:*i0; return s-*i0; }
int main() {
  { auto x=randv(7001), dy=randv(7001); std::vector<float> y(7001), dx(7001); std::vector<double> yr(7001), dxr(7001);
    for (int i=0;i<7001;++i){ yr[i]=x[i]<0?0:x[i]; dxr[i]=yr[i]>0?dy[i]:0; }
    launch({4},{256},[&]{ relu_forward_f32(y.data(), x.data(), 7001); }); check("relu fwd", y, yr, 1e-7);
    launch({4},{256},[&]{ relu_backward_f32(dx.data(), y.data(), dy.data(), 7001); }); check("relu bwd", dx, dxr, 1e-7); }
  { int N=2, C1=3, C2=4, HW=35; auto a=randv(N*C1*HW), b=randv(N*C2*HW); int Ct=C1+C2; std::vector<float> cat(N*Ct*HW); std::vector<double> catr(cat.size());
    for (int n=0;n<N;++n){ for(int c=0;c<Ct;++c) for(int p=0;p<HW;++p) catr[(n*Ct+c)*HW+p]= c<C1? a[(n*C1+c)*HW+p] : b[(n*C2+c-C1)*HW+p]; }
    launch({3},{256},[&]{ copy_strided_f32(cat.data(), a.data(), N, C1*HW, Ct*HW, 0, C1*HW, 0); });
    launch({3},{256},[&]{ copy_strided_f32(cat.data(), b.data(), N, C2*HW, Ct*HW, C1*HW, C2*HW, 0); });
    check("concat", cat, catr, 0);
    std::vector<float> bb(b.size()); launch({3},{256},[&]{ copy_strided_f32(bb.data(), cat.data(), N, C2*HW, C2*HW, 0, Ct*HW, C1*HW); });
    check("split", bb, std::vector<double>(b.begin(), b.end()), 0);
    std::vector<float> t(cat.size()); std::vector<double> tr(cat.size());
    for (int n=0;n<N;++n) for(int c=0;c<Ct;++c) for(int p=0;p<HW;++p) tr[(n*HW+p)*Ct+c]=cat[(n*Ct+c)*HW+p];
    launch({3},{256},[&]{ transpose_last2_f32(t.data(), cat.data(), N, Ct, HW); }); check("nchw->nhwc", t, tr, 0);
    std::vector<float> back(cat.size()); launch({3},{256},[&]{ transpose_last2_f32(back.data(), t.data(), N, HW, Ct); });
    check("nhwc->nchw", back, std::vector<double>(cat.begin(), cat.end()), 0); }
  struct S { int h, w, ho, wo; };
  for (int ac : {0, 1})
  for (S s : {S{7,9,28,36}, S{13,11,5,7}, S{4,4,64,64}, S{3,5,56,72}, S{1,3,4,6}, S{14,14,224,224}, S{5,5,5,5}, S{6,4,1,7}, S{14,14,28,28}}) {
    int P=6; auto x=randv(P*s.h*s.w), dy=randv(P*s.ho*s.wo); std::vector<double> yr(dy.size()), dxr(x.size());
    for (int p=0;p<P;++p) for (int oy=0;oy<s.ho;++oy) for (int ox=0;ox<s.wo;++ox) { int y0,y1,x0,x1; double ly=srcidx(oy,s.h,s.ho,ac,&y0,&y1), lx=srcidx(ox,s.w,s.wo,ac,&x0,&x1);
      const float* xp=&x[p*s.h*s.w]; long o=(long)(p*s.ho+oy)*s.wo+ox;
      yr[o]=(1-ly)*((1-lx)*xp[y0*s.w+x0]+lx*xp[y0*s.w+x1])+ly*((1-lx)*xp[y1*s.w+x0]+lx*xp[y1*s.w+x1]);
      double* d=&dxr[p*s.h*s.w]; double g=dy[o]; d[y0*s.w+x0]+=(1-ly)*(1-lx)*g; d[y0*s.w+x1]+=(1-ly)*lx*g; d[y1*s.w+x0]+=ly*(1-lx)*g; d[y1*s.w+x1]+=ly*lx*g; }
    std::vector<float> y(dy.size()), dx(x.size()); char name[100];
    launch({16},{256},[&]{ upsample_bilinear_forward_f32(y.data(), x.data(), P, s.h, s.w, s.ho, s.wo, ac); });
    snprintf(name,100,"bilinear fwd ac=%d %dx%d->%dx%d",ac,s.h,s.w,s.ho,s.wo); check(name, y, yr, 1e-6);
    launch({16},{256},[&]{ upsample_bilinear_backward_f32(dx.data(), dy.data(), P, s.h, s.w, s.ho, s.wo, ac); });
    snprintf(name,100,"bilinear bwd ac=%d %dx%d->%dx%d",ac,s.h,s.w,s.ho,s.wo); check(name, dx, dxr, 1e-6);
  }
  for (int k : {1,2,4}) { int P=6,h=7,w=5; auto x=randv(P*h*w), dy=randv(P*h*w*k*k); std::vector<double> yr(dy.size()), dxr(x.size());
    for (int p=0;p<P;++p) for (int oy=0;oy<h*k;++oy) for (int ox=0;ox<w*k;++ox) { long o=((long)p*h*k+oy)*w*k+ox; yr[o]=x[(p*h+oy/k)*w+ox/k]; dxr[(p*h+oy/k)*w+ox/k]+=dy[o]; }
    std::vector<float> y(dy.size()), dx(x.size()); char name[100];
    launch({4},{256},[&]{ upsample_nearest_forward_f32(y.data(), x.data(), P, h, w, k); }); snprintf(name,100,"nearest fwd x%d",k); check(name, y, yr, 0);
    launch({4},{256},[&]{ upsample_nearest_backward_f32(dx.data(), dy.data(), P, h, w, k); }); snprintf(name,100,"nearest bwd x%d",k); check(name, dx, dxr, 1e-6); }
  printf("failures: %d\n", failures); return failures != 0;
}
