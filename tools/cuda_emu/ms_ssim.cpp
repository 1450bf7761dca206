#include "emu.h"
#include "../../kernels/common.cuh"
#include "gen/ssim.cu"
#include "util.h"
#include <array>
static int filt(int n){ return n>=11? n-10 : n; }
static int pooled(int n){ return (n + 2*(n%2) - 2)/2 + 1; }
struct Levels { long P; std::vector<std::pair<int,int>> sizes; std::vector<std::vector<float>> xs, ys; float c1, c2;
  std::vector<float> filtered(int l) { auto [h,w]=sizes[l]; int oh=filt(h), ow=filt(w);
    std::vector<float> rows(5*P*oh*w), f(5*P*oh*ow);
    launch({64},{256},[&]{ ssim_filter_rows(rows.data(), xs[l].data(), ys[l].data(), P, h, w); });
    launch({64},{256},[&]{ ssim_filter_cols(f.data(), rows.data(), 5, P, oh, w); });
    return f; }
  void means(int l, std::vector<float>& cs, std::vector<float>& ss) { auto [h,w]=sizes[l]; auto f=filtered(l); cs.assign(P,0); ss.assign(P,0);
    launch({(unsigned)P},{256},[&]{ ssim_plane_means(cs.data(), ss.data(), f.data(), P, filt(h)*filt(w), c1, c2); }); }
  std::vector<float> backward(int l, std::vector<float> gs, std::vector<float> gc) { auto [h,w]=sizes[l]; int oh=filt(h), ow=filt(w); auto f=filtered(l);
    std::vector<float> maps(3*P*oh*ow), cols(3*P*oh*w), dx(P*h*w);
    launch({64},{256},[&]{ ssim_grad_maps(maps.data(), f.data(), gs.data(), gc.data(), P, oh*ow, c1, c2); });
    launch({64},{256},[&]{ ssim_filter_cols_t(cols.data(), maps.data(), 3, P, oh, w); });
    launch({64},{256},[&]{ ssim_filter_rows_t_combine(dx.data(), cols.data(), xs[l].data(), ys[l].data(), P, h, w, 0); });
    return dx; }
};
int main() {
  int N=2,H=176,W=181; std::vector<float> x, y;
  for (int b=0;b<N;++b) for (int r=0;r<H;++r) for (int c=0;c<W;++c) { double xv=0.5+0.3*std::sin(0.11*r+b)*std::cos(0.07*c)+0.1*std::sin(0.31*(r+c)); double yv=xv+0.08*std::sin(1.7*r+2.3*c+b)+0.05*std::cos(0.009*r*c); x.push_back((float)xv); y.push_back((float)yv); }
  Levels lv; lv.P=N; lv.sizes.push_back({H,W}); lv.xs.push_back(x); lv.ys.push_back(y); lv.c1=1e-4f; lv.c2=9e-4f;
  for (int l=1;l<5;++l){ auto [h,w]=lv.sizes[l-1]; int oh=pooled(h), ow=pooled(w); std::vector<float> nx(N*oh*ow), ny(N*oh*ow);
    launch({64},{256},[&]{ ssim_avg_pool(nx.data(), lv.xs[l-1].data(), N, h, w); }); launch({64},{256},[&]{ ssim_avg_pool(ny.data(), lv.ys[l-1].data(), N, h, w); });
    lv.xs.push_back(nx); lv.ys.push_back(ny); lv.sizes.push_back({oh,ow}); }
  const double wts[5]={0.0448,0.2856,0.3001,0.2363,0.1333};
  std::vector<std::array<double,5>> terms(N);
  std::vector<float> ss0;
  for (int l=0;l<5;++l){ std::vector<float> cs, ss; lv.means(l, cs, ss); if (l==0) ss0=ss; for(int i=0;i<N;++i) terms[i][l]= l<4? cs[i] : ss[i]; }
  double value=0; std::vector<std::array<double,5>> dterm(N);
  for (int i=0;i<N;++i){ double v=1; for(int l=0;l<5;++l) v*=std::pow(std::max(terms[i][l],0.0), wts[l]); value+=v/N;
    for (int l=0;l<5;++l){ double o=1; for(int j=0;j<5;++j) if(j!=l) o*=std::pow(std::max(terms[i][j],0.0),wts[j]); dterm[i][l]= terms[i][l]>0 ? (1.0/N)*wts[l]*std::pow(terms[i][l],wts[l]-1)*o : 0; } }
  // References: pytorch_msssim 1.0.0 in float64 with a float64 window (tests/heads_grad.rs).
  double s0 = (ss0[0]+ss0[1])/2;
  printf("ms_ssim %.10f (reference 0.9468268665, diff %.2e)\n", value, value-0.9468268664966576);
  printf("ssim %.10f (reference 0.5359614377, diff %.2e)\n", s0, s0-0.5359614377224152);
  if (std::fabs(value-0.9468268664966576) > 2e-6 || std::fabs(s0-0.5359614377224152) > 1e-5) ++failures;
  std::vector<float> upper;
  for (int l=4;l>=0;--l){ std::vector<float> d(N), z(N,0); for(int i=0;i<N;++i) d[i]=dterm[i][l];
    auto dx = l<4 ? lv.backward(l, z, d) : lv.backward(l, d, z);
    if (!upper.empty()) { auto [h,w]=lv.sizes[l]; launch({64},{256},[&]{ ssim_avg_pool_backward_add(dx.data(), upper.data(), N, h, w); }); }
    upper=dx; }
  long idx[8]={0,1,180,912,16016,31855,31859,63711}; double ref[8]={1.2540819014625405e-10,6.176091237736138e-10,-1.5785267174596197e-11,-1.0259387905032027e-05,3.2128706360393436e-05,4.009708850927065e-11,7.220717172937835e-09,9.110063118679536e-11};
  for (int k=0;k<8;++k) { double e=(upper[idx[k]]-ref[k])/3.21e-5; if (std::fabs(e) > 1e-4) ++failures;
    printf("grad[%ld] %.6e ref %.6e (err rel to max %.2e)\n", idx[k], upper[idx[k]], ref[k], e); }
  printf("failures: %d\n", failures); return failures != 0;
}
