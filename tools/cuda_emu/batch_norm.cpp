#include "emu.h"
#include "../../kernels/common.cuh"
#include "gen/batch_norm.cu"
#include "util.h"
int main() {
  int N=3, C=13, H=9, W=11; long HW=H*W, M=N*HW; float eps=1e-5f, mom=0.1f;
  auto x = randv(N*C*HW, -1, 3), w = randv(C), b = randv(C), dy = randv(N*C*HW);
  auto rm = randv(C), rv = randv(C, 0.5, 2), dw0 = randv(C), db0 = randv(C);
  std::vector<double> mu(C), var(C), y_ref(x.size()), rm_ref(C), rv_ref(C), ye_ref(x.size()), dx_ref(x.size()), dw_ref(C), db_ref(C), rs_ref(C), mu_ref(C);
  for (int c=0;c<C;++c) { double s=0; for (int n=0;n<N;++n) for (long p=0;p<HW;++p) s+=x[(n*C+c)*HW+p]; mu[c]=s/M;
    double v=0; for (int n=0;n<N;++n) for (long p=0;p<HW;++p) { double d=x[(n*C+c)*HW+p]-mu[c]; v+=d*d; } var[c]=v/M;
    rs_ref[c]=1/std::sqrt(var[c]+eps); mu_ref[c]=mu[c];
    rm_ref[c]=(1-mom)*rm[c]+mom*mu[c]; rv_ref[c]=(1-mom)*rv[c]+mom*var[c]*M/(M-1);
    double sdy=0,sdyx=0;
    for (int n=0;n<N;++n) for (long p=0;p<HW;++p) { long i=(n*C+c)*HW+p; double xh=(x[i]-mu[c])*rs_ref[c]; y_ref[i]=xh*w[c]+b[c];
      ye_ref[i]=(x[i]-rm_ref[c])/std::sqrt(rv_ref[c]+eps)*w[c]+b[c]; sdy+=dy[i]; sdyx+=dy[i]*xh; }
    dw_ref[c]=dw0[c]+sdyx; db_ref[c]=db0[c]+sdy;
    for (int n=0;n<N;++n) for (long p=0;p<HW;++p) { long i=(n*C+c)*HW+p; double xh=(x[i]-mu[c])*rs_ref[c]; dx_ref[i]=w[c]*rs_ref[c]*(dy[i]-sdy/M-xh*sdyx/M); }
  }
  std::vector<float> mean(C), rstd(C), y(x.size()), ye(x.size()), dx(x.size()), dw(dw0), db(db0), rmv(rm), rvv(rv);
  launch({(unsigned)C},{256}, [&]{ batch_norm_stats_f32(mean.data(), rstd.data(), rmv.data(), rvv.data(), x.data(), N, C, HW, eps, mom); });
  check("bn mean", mean, mu_ref, 1e-6); check("bn rstd", rstd, rs_ref, 1e-5); check("bn running_mean", rmv, rm_ref, 1e-6); check("bn running_var", rvv, rv_ref, 1e-6);
  launch({8},{256}, [&]{ batch_norm_apply_f32(y.data(), x.data(), w.data(), b.data(), mean.data(), rstd.data(), C, HW, (long long)x.size()); });
  check("bn apply", y, y_ref, 1e-5);
  launch({8},{256}, [&]{ batch_norm_eval_f32(ye.data(), x.data(), w.data(), b.data(), rmv.data(), rvv.data(), C, HW, (long long)x.size(), eps); });
  check("bn eval", ye, ye_ref, 1e-5);
  launch({(unsigned)C},{256}, [&]{ batch_norm_backward_f32(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C, HW); });
  check("bn dx", dx, dx_ref, 1e-5); check("bn dw+=", dw, dw_ref, 1e-5); check("bn db+=", db, db_ref, 1e-5);
  auto xb=tobf(x), wb=tobf(w), bb=tobf(b), dyb=tobf(dy); std::vector<bf16_t> yb(x.size()), dxb(x.size()), dwb=tobf(dw0), dbb=tobf(db0);
  std::vector<float> rm2(rm), rv2(rv);
  launch({(unsigned)C},{256}, [&]{ batch_norm_stats_bf16(mean.data(), rstd.data(), rm2.data(), rv2.data(), xb.data(), N, C, HW, eps, mom); });
  launch({8},{256}, [&]{ batch_norm_apply_bf16(yb.data(), xb.data(), wb.data(), bb.data(), mean.data(), rstd.data(), C, HW, (long long)x.size()); });
  check("bn apply bf16", frombf(yb), y_ref, 2e-2);
  launch({(unsigned)C},{256}, [&]{ batch_norm_backward_bf16(dxb.data(), dwb.data(), dbb.data(), dyb.data(), xb.data(), wb.data(), mean.data(), rstd.data(), N, C, HW); });
  check("bn dx bf16", frombf(dxb), dx_ref, 3e-2); check("bn dw bf16", frombf(dwb), dw_ref, 2e-2);
  printf("failures: %d\n", failures); return failures != 0;
}
