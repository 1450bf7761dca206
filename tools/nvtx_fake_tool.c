/*
 * A fake NVTX tool (what nsys or ncu inject), for tests/nvtx.rs: it attaches to seisfuse's
 * NVTX client (src/nvtx.rs) through the protocol of NVIDIA's NVTX v3 header and writes every
 * range and mark it receives to a file, one per line:
 *
 *   init              the client's tables passed every check below
 *   push NAME         nvtxRangePushA
 *   pop               nvtxRangePop
 *   mark NAME         nvtxMarkA
 *   error: WHAT       a check failed; InitializeInjectionNvtx2 then returns 0
 *   declined          SEISFUSE_NVTX_FAKE_DECLINE is set; InitializeInjectionNvtx2 returns 0
 *
 * The file is named by SEISFUSE_NVTX_FAKE_LOG. Built by the test with
 *   cc -shared -fPIC -I <site-packages>/nvidia/cu13/include tools/nvtx_fake_tool.c
 * against the header of the `nvidia-nvtx` wheel, so the struct layouts, table IDs, module IDs
 * and slot indices checked here are NVIDIA's, not copies of ours.
 */
#define NVTX_NO_IMPL /* "Use when writing NVTX tools" (nvToolsExt.h): types only, no client */
#include <nvtx3/nvToolsExt.h>

#include <stdio.h>
#include <stdlib.h>

static FILE* out;
static __thread int depth;

static void say(const char* what, const char* name)
{
    if (!out)
        return;
    if (name)
        fprintf(out, "%s %s\n", what, name);
    else
        fprintf(out, "%s\n", what);
    fflush(out);
}

static int fake_push(const char* message)
{
    say("push", message);
    return depth++;
}

static int fake_pop(void)
{
    say("pop", NULL);
    return --depth;
}

static void fake_mark(const char* message)
{
    say("mark", message);
}

static int fail(const char* what)
{
    say("error:", what);
    return 0;
}

/* NVTX_CBID_<MODULE>_SIZE for each NvtxCallbackModule, from the header. */
static unsigned int expected_size(NvtxCallbackModule m)
{
    switch (m)
    {
    case NVTX_CB_MODULE_CORE: return NVTX_CBID_CORE_SIZE;
    case NVTX_CB_MODULE_CUDA: return NVTX_CBID_CUDA_SIZE;
    case NVTX_CB_MODULE_OPENCL: return NVTX_CBID_OPENCL_SIZE;
    case NVTX_CB_MODULE_CUDART: return NVTX_CBID_CUDART_SIZE;
    case NVTX_CB_MODULE_CORE2: return NVTX_CBID_CORE2_SIZE;
    case NVTX_CB_MODULE_SYNC: return NVTX_CBID_SYNC_SIZE;
    default: return 0;
    }
}

__attribute__((visibility("default"))) int InitializeInjectionNvtx2(NvtxGetExportTableFunc_t getExportTable)
{
    const char* path = getenv("SEISFUSE_NVTX_FAKE_LOG");
    const NvtxExportTableCallbacks* callbacks;
    const NvtxExportTableVersionInfo* version;
    NvtxFunctionTable core = NULL;
    unsigned int core_size = 0;
    int m;

    if (path)
        out = fopen(path, "w");
    if (getenv("SEISFUSE_NVTX_FAKE_DECLINE"))
    {
        say("declined", NULL);
        return 0;
    }
    if (!getExportTable)
        return fail("no GetExportTable");

    callbacks = (const NvtxExportTableCallbacks*)getExportTable(NVTX_ETID_CALLBACKS);
    if (!callbacks)
        return fail("no callbacks table");
    if (callbacks->struct_size != sizeof(NvtxExportTableCallbacks))
        return fail("callbacks table struct_size");
    if (!callbacks->GetModuleFunctionTable)
        return fail("no GetModuleFunctionTable");

    version = (const NvtxExportTableVersionInfo*)getExportTable(NVTX_ETID_VERSIONINFO);
    if (!version)
        return fail("no version-info table");
    if (version->struct_size != sizeof(NvtxExportTableVersionInfo))
        return fail("version-info struct_size");
    if (version->version != NVTX_VERSION)
        return fail("version is not NVTX_VERSION");
    if (!version->SetInjectionNvtxVersion)
        return fail("no SetInjectionNvtxVersion");
    version->SetInjectionNvtxVersion(NVTX_VERSION);

    if (getExportTable(NVTX_ETID_INVALID) || getExportTable(NVTX_ETID_RESERVED0) ||
        getExportTable(NVTX_ETID_SIZE))
        return fail("a table for an invalid or reserved ID");

    /* Every module, as a full tool asks for them: the header's sizes, a null entry 0 and a
     * null guard entry after the last slot, and a slot behind every entry in between. */
    for (m = NVTX_CB_MODULE_CORE; m < NVTX_CB_MODULE_SIZE; ++m)
    {
        NvtxFunctionTable table = NULL;
        unsigned int size = 0, i;
        if (!callbacks->GetModuleFunctionTable((NvtxCallbackModule)m, &table, &size))
            return fail("GetModuleFunctionTable refused a module");
        if (!table || size != expected_size((NvtxCallbackModule)m))
            return fail("module table size");
        if (table[0] || table[size])
            return fail("module table entry 0 or the guard entry is not null");
        for (i = 1; i < size; ++i)
            if (!table[i])
                return fail("module table entry without a slot");
        if (m == NVTX_CB_MODULE_CORE)
        {
            core = table;
            core_size = size;
        }
    }
    if (callbacks->GetModuleFunctionTable(NVTX_CB_MODULE_INVALID, &core, NULL) ||
        callbacks->GetModuleFunctionTable(NVTX_CB_MODULE_SIZE, &core, NULL))
        return fail("GetModuleFunctionTable accepted an invalid module");
    if (!core || core_size != NVTX_CBID_CORE_SIZE)
        return fail("core table lost");

    *core[NVTX_CBID_CORE_RangePushA] = (NvtxFunctionPointer)(nvtxRangePushA_impl_fntype)fake_push;
    *core[NVTX_CBID_CORE_RangePop] = (NvtxFunctionPointer)(nvtxRangePop_impl_fntype)fake_pop;
    *core[NVTX_CBID_CORE_MarkA] = (NvtxFunctionPointer)(nvtxMarkA_impl_fntype)fake_mark;
    say("init", NULL);
    return 1;
}
