// AdamW step on fp32 master weights (decoupled weight decay, bias correction), as
// torch.optim.AdamW; optionally writes a bf16 copy of the updated weights for bf16 matmuls.
// CPU twin: src/backend/cpu/adamw.rs.

extern "C" __global__ void adamw_step_f32(float* p, const float* g, float* m, float* v,
                                          bf16_t* p_bf16, long long n, float lr, float beta1,
                                          float beta2, float eps, float weight_decay, float bc1,
                                          float bc2_sqrt) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float gi = g[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        float pi = p[i] * (1.0f - lr * weight_decay);
        pi -= (lr / bc1) * mi / denom;
        p[i] = pi;
        if (p_bf16) p_bf16[i] = f32_to_bf16(pi);
    }
}
