//! Learning-rate schedules: linear warm-up then half-cycle cosine (MAE, SeisLM).

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    pub base_lr: f32,
    pub min_lr: f32,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl Schedule {
    pub fn lr(&self, step: usize) -> f32 {
        if step < self.warmup_steps {
            return self.base_lr * (step + 1) as f32 / self.warmup_steps as f32;
        }
        let span = (self.total_steps.saturating_sub(self.warmup_steps)).max(1) as f32;
        let progress = ((step - self.warmup_steps) as f32 / span).min(1.0);
        self.min_lr
            + (self.base_lr - self.min_lr) * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn warmup_then_cosine() {
        let s = Schedule {
            base_lr: 1.0,
            min_lr: 0.0,
            warmup_steps: 10,
            total_steps: 110,
        };
        assert!((s.lr(0) - 0.1).abs() < 1e-6);
        assert!((s.lr(9) - 1.0).abs() < 1e-6);
        assert!((s.lr(60) - 0.5).abs() < 1e-6);
        assert!(s.lr(110).abs() < 1e-6);
    }
}
