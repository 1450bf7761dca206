//! Models built from `nn` layers: the SFM encoder, MAE and heads, SeisLM, fusion.

pub mod sfm_heads;
