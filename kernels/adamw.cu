// The optimizer over a parameter store's flat buffers (src/nn/store.rs), as llm.c does it:
// one launch for the gradient norm's partial sums, one for AdamW over every trainable range.
// The ranges come as a table of chunks (offset, length, learning-rate scale, weight-decay
// flag), one block per chunk. CPU twin: src/backend/cpu/adamw.rs.

// partials[c] = Σ grads² over chunk c (a fixed tree per chunk: deterministic). sum_final in
// reduce.cu adds the partials.
extern "C" __global__ void grad_norm_partials(float* partials, const float* grads,
                                              const int* chunk_offset, const int* chunk_len) {
    __shared__ float scratch[32];
    const long long off = chunk_offset[blockIdx.x];
    const int len = chunk_len[blockIdx.x];
    float s = 0.0f;
    for (int j = threadIdx.x; j < len; j += blockDim.x) {
        float g = grads[off + j];
        s += g * g;
    }
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// AdamW (decoupled weight decay, bias correction) as torch.optim.AdamW, on the chunks of the
// table. The gradient is first scaled by max_norm / (norm + 1e-6) when max_norm > 0 and the
// norm (sqrt of norm_sq[0], read on the device: no host round trip) exceeds it. A non-finite
// norm leaves everything untouched (the host reports it). `compute`, when not null, receives
// the bf16 copy of each updated value.
extern "C" __global__ void adamw_chunks(float* values, float* m, float* v, bf16_t* compute,
                                        const float* grads, const int* chunk_offset,
                                        const int* chunk_len, const float* chunk_lr_scale,
                                        const float* chunk_decay, const float* norm_sq, float lr,
                                        float beta1, float beta2, float eps, float weight_decay,
                                        float bc1, float bc2_sqrt, float max_norm) {
    const float nsq = norm_sq[0];
    if (!(nsq <= 3.402823466e38f)) return;  // NaN or infinite
    float clip = 1.0f;
    if (max_norm > 0.0f) {
        const float norm = sqrtf(nsq);
        if (norm > max_norm) clip = max_norm / (norm + 1e-6f);
    }
    const int c = blockIdx.x;
    const long long off = chunk_offset[c];
    const int len = chunk_len[c];
    const float lr_c = lr * chunk_lr_scale[c];
    const float wd = weight_decay * chunk_decay[c];
    for (int j = threadIdx.x; j < len; j += blockDim.x) {
        const long long i = off + j;
        const float g = grads[i] * clip;
        const float mi = beta1 * m[i] + (1.0f - beta1) * g;
        const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        const float denom = sqrtf(vi) / bc2_sqrt + eps;
        float p = values[i] * (1.0f - lr_c * wd);
        p -= (lr_c / bc1) * mi / denom;
        values[i] = p;
        if (compute) compute[i] = f32_to_bf16(p);
    }
}
