#!/usr/bin/env python3
"""Regenerates the op methods of src/backend/record.rs from the backend traits in
src/backend/api/*.rs: one `logged!` method per op, whose block logs each tensor argument under
its parameter or field name, shape descriptors as details and integer and flag arguments as
numbers (the macro, in record.rs, pushes the call and delegates to the CPU backend). Run it
after changing an op's signature, then `cargo fmt`:

    python3 tools/gen_record.py && cargo fmt
"""
import re,glob,sys
import os
root=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..') + '/'
structs={}   # name -> list of (field, type)
enums=set()
traits=[]    # (trait, [(fname, params_str, ret)])
for f in sorted(glob.glob(root+'src/backend/api/*.rs')):
    s=open(f).read()
    for m in re.finditer(r'pub struct (\w+)(<[^>]*>)?\s*\{(.*?)\n\}', s, re.S):
        fields=[]
        for fm in re.finditer(r'^\s*pub (\w+):\s*([^,\n]+),', m.group(3), re.M):
            fields.append((fm.group(1), fm.group(2).strip()))
        structs[m.group(1)]=fields
    for m in re.finditer(r'pub enum (\w+)', s):
        enums.add(m.group(1))
    if f.endswith('mod.rs'):
        continue
    for m in re.finditer(r'pub trait (\w+)[^{]*\{(.*?)\n\}', s, re.S):
        fns=[]
        for fm in re.finditer(r'fn (\w+)\s*\((.*?)\)\s*->\s*([^;{]+?)\s*;', m.group(2), re.S):
            fns.append((fm.group(1), ' '.join(fm.group(2).split()), fm.group(3).strip()))
        traits.append((m.group(1), fns))

def split_params(p):
    out=[];depth=0;cur=''
    for ch in p:
        if ch in '<([': depth+=1
        if ch in '>)]': depth-=1
        if ch==',' and depth==0:
            out.append(cur.strip()); cur=''
        else: cur+=ch
    if cur.strip(): out.append(cur.strip())
    return out

DETAILS={'MatmulShape','AttnShape','Conv1dShape','Conv2dShape','StridedCopy','SliceDims','ChunkTable'}
unknown=set()
def base(t):
    t=re.sub(r"&'a mut\s+|&'a\s+|&mut\s+|&\s*","",t).strip()
    t=re.sub(r"<'a>|<'_>","",t).strip()
    return t
def rec(expr, name, ty, lines, depth=0):
    ty=ty.strip()
    b=base(ty)
    if ty.startswith('Option<('):
        lines.append(f'        if let Some((t, _)) = &{expr} {{')
        lines.append(f'            r.t("{name}", t);')
        lines.append('        }')
        return
    if b in ('MelImagePlan','LogMel<f32>','AdamWConfig'):
        return
    if ty.startswith('Option<'):
        inner=ty[7:-1].strip()
        if base(inner)=='Tensor':
            if '&mut' in inner or "&'a mut" in inner:
                lines.append(f'        r.opt("{name}", {expr}.as_deref());')
            else:
                lines.append(f'        r.opt("{name}", {expr});')
            return
        if base(inner) in structs:
            lines.append(f'        if let Some(x) = &{expr} {{')
            sub=[]
            for fname,fty in structs[base(inner)]:
                rec(f'x.{fname}', fname, fty, sub, depth+1)
            lines.extend(['    '+l for l in sub]); lines.append('        }')
            return
        unknown.add(ty); return
    if b=='Tensor':
        if 'mut' in ty: lines.append(f'        r.t("{name}", &*{expr});')
        else: lines.append(f'        r.t("{name}", {expr});')
        return
    if b in DETAILS:
        lines.append(f'        r.detail({"&" if not ty.startswith("&") else ""}{expr});'); return
    if b == 'usize':
        lines.append(f'        r.num("{name}", {expr});'); return
    if b in ('i32','u32','u64','i64'):
        lines.append(f'        r.num("{name}", {expr} as usize);'); return
    if b=='bool':
        lines.append(f'        r.num("{name}", {expr} as usize);'); return
    if b in ('f32','f64'):
        return
    if b=='AttnGrads':
        lines.append(f'        r.attn_grads(&{expr});'); return
    if b in structs:
        for fname,fty in structs[b]:
            rec(f'{expr}.{fname}', fname, fty, lines, depth+1)
        return
    unknown.add(ty)

out=[]
out.append("// Generated from src/backend/api/*.rs by tools/gen_record.py (one `logged!` method per op: each\n// tensor argument logged under its parameter or field name, shape descriptors as details, integer\n// and flag arguments as numbers); the compiler checks that every op of `Backend` is here.\n")
for trait,fns in traits:
    out.append(f'impl api::{trait} for Recorder {{')
    for fname,params,ret in fns:
        ps=split_params(params)
        assert ps[0]=='&self',(fname,ps)
        assert ret in ('Result<()>','Result<f32>'),(fname,ret)
        lines=[]
        for p in ps[1:]:
            n,t=p.split(':',1)
            n=n.strip()
            assert not n.startswith('mut '),(fname,p)
            rec(n, n, t, lines)
        sig=', '.join(ps)
        head=f'    logged!({fname}({sig}) -> {ret}, |r| {{'
        if len(head)>100:
            head=f'    logged!({fname}(\n        {sig}\n    ) -> {ret}, |r| {{'
        out.append(head)
        out.extend(lines)
        out.append('    });')
    out.append('}\n')
if unknown: print('UNKNOWN', unknown, file=sys.stderr)
p=root+'src/backend/record.rs'
s=open(p).read()
i=s.index('// Generated from src/backend/api/*.rs')
s=s[:i]+'\n'.join(out).rstrip()+'\n'
open(p,'w').write(s)
