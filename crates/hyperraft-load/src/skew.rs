//! Which item a workload touches: uniform, or Zipf-skewed towards a few hot ones.

use std::str::FromStr;

use crate::Rng;

/// Access distribution over `n` items.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Skew {
    Uniform,
    /// Item `k` (0-based) is picked with weight `1 / (k + 1)^s`.
    Zipf(f64),
}

#[derive(Debug, thiserror::Error)]
#[error("skew must be `uniform` or `zipf:S` with S in (0, 10], got `{0}`")]
pub struct SkewParseError(String);

impl FromStr for Skew {
    type Err = SkewParseError;

    fn from_str(text: &str) -> Result<Skew, SkewParseError> {
        if text == "uniform" {
            return Ok(Skew::Uniform);
        }
        let exponent = text.strip_prefix("zipf:").and_then(|s| s.parse::<f64>().ok());
        match exponent {
            Some(s) if s > 0.0 && s <= 10.0 => Ok(Skew::Zipf(s)),
            _ => Err(SkewParseError(text.to_string())),
        }
    }
}

/// Largest item count a Zipf picker tabulates (8 bytes per item).
pub const ZIPF_ITEMS_MAX: u64 = 50_000_000;

/// Picks items `0..n` under a [`Skew`].
pub struct Picker {
    items: u64,
    /// Cumulative weights for Zipf; empty for uniform.
    cumulative: Vec<f64>,
}

impl Picker {
    /// `items` must be at least 2 (a transfer needs two accounts).
    pub fn new(items: u64, skew: Skew) -> Picker {
        assert!(items >= 2, "a workload needs at least two items");
        let cumulative = match skew {
            Skew::Uniform => Vec::new(),
            Skew::Zipf(exponent) => {
                assert!(items <= ZIPF_ITEMS_MAX, "zipf over more than {ZIPF_ITEMS_MAX} items");
                let mut total = 0.0;
                (0..items)
                    .map(|k| {
                        total += 1.0 / ((k + 1) as f64).powf(exponent);
                        total
                    })
                    .collect()
            }
        };
        Picker { items, cumulative }
    }

    pub fn pick(&self, rng: &mut Rng) -> u64 {
        match self.cumulative.last() {
            None => rng.below(self.items),
            Some(&total) => {
                let target = rng.next_f64() * total;
                self.cumulative.partition_point(|&weight| weight <= target).min(self.items as usize - 1) as u64
            }
        }
    }

    /// Two different items.
    pub fn pick_pair(&self, rng: &mut Rng) -> (u64, u64) {
        let first = self.pick(rng);
        loop {
            let second = self.pick(rng);
            if second != first {
                return (first, second);
            }
        }
    }
}
