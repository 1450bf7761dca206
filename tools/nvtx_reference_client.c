/*
 * NVIDIA's own NVTX client (the header-only implementation in nvtx3/nvToolsExt.h), for
 * tests/nvtx.rs: it shows that tools/nvtx_fake_tool.c attaches to the reference client and
 * records what it is sent, before the test attaches the same tool to seisfuse's client.
 * Expected record: init, push outer, push inner, mark here, pop, pop.
 */
#include <nvtx3/nvToolsExt.h>

int main(void)
{
    nvtxRangePushA("outer");
    nvtxRangePushA("inner");
    nvtxMarkA("here");
    nvtxRangePop();
    nvtxRangePop();
    return 0;
}
