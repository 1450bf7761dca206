#include "emu.h"
#include "../../kernels/common.cuh"
#include "gen/conv2d.cu"
#include "util.h"
int main() {
  struct Case { int n, cin, cout, h, w, k; };
  for (Case c : {Case{2,5,11,19,23,3}, Case{1,3,9,33,17,1}, Case{3,17,4,7,5,3}, Case{1,2,8,16,16,3}}) {
    int P = c.k/2, KK = c.k*c.k; long HW = (long)c.h*c.w;
    auto x = randv((size_t)c.n*c.cin*HW), w = randv((size_t)c.cout*c.cin*KK), b = randv(c.cout), dy = randv((size_t)c.n*c.cout*HW);
    auto dw0 = randv(w.size()), db0 = randv(c.cout);
    std::vector<double> y_ref(dy.size()), dx_ref(x.size()), dw_ref(dw0.begin(), dw0.end()), db_ref(db0.begin(), db0.end());
    for (int n=0;n<c.n;++n) for (int co=0;co<c.cout;++co) for (int oy=0;oy<c.h;++oy) for (int ox=0;ox<c.w;++ox) {
      double s = b[co]; long yi = ((long)(n*c.cout+co)*c.h+oy)*c.w+ox;
      for (int ci=0;ci<c.cin;++ci) for (int ky=0;ky<c.k;++ky) for (int kx=0;kx<c.k;++kx) {
        int iy=oy+ky-P, ix=ox+kx-P; if (iy<0||ix<0||iy>=c.h||ix>=c.w) continue;
        long xi = ((long)(n*c.cin+ci)*c.h+iy)*c.w+ix; long wi = ((long)(co*c.cin+ci)*c.k+ky)*c.k+kx;
        s += (double)w[wi]*x[xi]; dx_ref[xi] += (double)w[wi]*dy[yi]; dw_ref[wi] += (double)dy[yi]*x[xi];
      }
      y_ref[yi] = s; db_ref[co] += dy[yi];
    }
    int tiles = ((c.h+15)/16)*((c.w+15)/16);
    std::vector<float> y(dy.size()), dx(x.size()), dw(dw0), db(db0);
    char name[200];
    auto fwd = c.k==3 ? conv2d_forward_k3_f32 : conv2d_forward_k1_f32;
    launch({(unsigned)tiles,(unsigned)((c.cout+7)/8),(unsigned)c.n},{256}, [&]{ fwd(y.data(), x.data(), w.data(), b.data(), 1, c.n, c.cin, c.cout, c.h, c.w); });
    snprintf(name, 200, "conv fwd n%d %d->%d %dx%d k%d", c.n,c.cin,c.cout,c.h,c.w,c.k); check(name, y, y_ref, 1e-5);
    auto bin = c.k==3 ? conv2d_backward_input_k3_f32 : conv2d_backward_input_k1_f32;
    launch({(unsigned)tiles,(unsigned)((c.cin+7)/8),(unsigned)c.n},{256}, [&]{ bin(dx.data(), dy.data(), w.data(), c.n, c.cin, c.cout, c.h, c.w); });
    snprintf(name, 200, "conv dx   n%d %d->%d %dx%d k%d", c.n,c.cin,c.cout,c.h,c.w,c.k); check(name, dx, dx_ref, 1e-5);
    auto bw = c.k==3 ? conv2d_backward_weight_k3_f32 : conv2d_backward_weight_k1_f32;
    launch({(unsigned)(c.cout*c.cin),1,1},{256}, [&]{ bw(dw.data(), dy.data(), x.data(), c.n, c.cin, c.cout, c.h, c.w); });
    snprintf(name, 200, "conv dw+= n%d %d->%d %dx%d k%d", c.n,c.cin,c.cout,c.h,c.w,c.k); check(name, dw, dw_ref, 1e-5);
    launch({(unsigned)c.cout,1,1},{256}, [&]{ conv2d_backward_bias_f32(db.data(), dy.data(), c.n, c.cout, HW); });
    snprintf(name, 200, "conv db+= n%d %d->%d %dx%d k%d", c.n,c.cin,c.cout,c.h,c.w,c.k); check(name, db, db_ref, 1e-5);
    // bf16 forward and dx with bf16-rounded inputs
    auto xb = tobf(x), wb = tobf(w), bb = tobf(b), dyb = tobf(dy);
    std::vector<bf16_t> yb(y.size());
    auto fwdb = c.k==3 ? conv2d_forward_k3_bf16 : conv2d_forward_k1_bf16;
    launch({(unsigned)tiles,(unsigned)((c.cout+7)/8),(unsigned)c.n},{256}, [&]{ fwdb(yb.data(), xb.data(), wb.data(), bb.data(), 1, c.n, c.cin, c.cout, c.h, c.w); });
    snprintf(name, 200, "conv fwd bf16 n%d %d->%d k%d", c.n,c.cin,c.cout,c.k); check(name, frombf(yb), y_ref, 2e-2);
  }
  printf("failures: %d\n", failures); return failures != 0;
}
