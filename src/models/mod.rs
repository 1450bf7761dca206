//! Models: the SFM image encoder and MAE, SeisLM, their heads, and the fusion models.

pub mod fusion;
pub mod mae;
pub mod pos_embed;
pub mod seislm;
pub mod seislm_heads;
pub mod seislm_pretrain;
pub mod sfm;
pub mod sfm_heads;
pub mod wav2vec2_objective;
