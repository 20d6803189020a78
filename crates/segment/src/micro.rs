//! Micro-segments: k-means (k-means++ seeding, deterministic) on standardised behavioural
//! and social features, each group described in words by the features that set it apart
//! (mean z-score beyond ±0.5). Pure: the caller supplies the feature rows.

use serde::Serialize;

/// A feature and the words for a group well above or below average on it (empty: not
/// worth saying).
#[derive(Debug, Clone, Copy)]
pub struct Feature {
    pub name: &'static str,
    pub high: &'static str,
    pub low: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Indexes of the rows in this group.
    #[serde(skip)]
    pub members: Vec<usize>,
    pub size: usize,
    /// Mean of each feature in the group, in the features' units.
    pub means: Vec<(String, f64)>,
    /// Mean z-score of each feature (how far from everyone, in standard deviations).
    pub z: Vec<(String, f64)>,
    pub description: String,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn nearest(p: &[f64], centres: &[Vec<f64>]) -> usize {
    let mut best = (f64::INFINITY, 0);
    for (c, centre) in centres.iter().enumerate() {
        let d = dist2(p, centre);
        if d < best.0 {
            best = (d, c);
        }
    }
    best.1
}

/// Groups `rows` (one feature vector each, in `features` order) into at most `k` groups,
/// largest first. Fits on up to 50,000 rows, assigns every row.
pub fn cluster(rows: &[Vec<f64>], features: &[Feature], k: usize, seed: u64) -> Vec<Group> {
    let n = rows.len();
    let d = features.len();
    if n == 0 || k == 0 {
        return vec![];
    }
    let k = k.min(n);
    let mean: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n as f64)
        .collect();
    let sd: Vec<f64> = (0..d)
        .map(|j| {
            let v = rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n as f64;
            if v > 0.0 {
                v.sqrt()
            } else {
                1.0
            }
        })
        .collect();
    let z: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| (0..d).map(|j| (r[j] - mean[j]) / sd[j]).collect())
        .collect();
    let mut rng = Rng(seed);
    let step = (n / 50_000).max(1);
    let fit: Vec<&Vec<f64>> = z.iter().step_by(step).collect();
    // k-means++ seeding.
    let mut centres: Vec<Vec<f64>> = vec![fit[(rng.next() % fit.len() as u64) as usize].clone()];
    let mut best: Vec<f64> = fit.iter().map(|p| dist2(p, &centres[0])).collect();
    while centres.len() < k {
        let total: f64 = best.iter().sum();
        if total <= 0.0 {
            break;
        }
        let mut target = rng.unit() * total;
        let mut pick = fit.len() - 1;
        for (i, b) in best.iter().enumerate() {
            target -= b;
            if target <= 0.0 {
                pick = i;
                break;
            }
        }
        let c = fit[pick].clone();
        for (i, p) in fit.iter().enumerate() {
            best[i] = best[i].min(dist2(p, &c));
        }
        centres.push(c);
    }
    // Lloyd iterations on the fitting rows.
    let mut assign = vec![usize::MAX; fit.len()];
    for _ in 0..100 {
        let mut moved = false;
        for (i, p) in fit.iter().enumerate() {
            let c = nearest(p, &centres);
            if c != assign[i] {
                assign[i] = c;
                moved = true;
            }
        }
        if !moved {
            break;
        }
        let mut sums = vec![vec![0.0; d]; centres.len()];
        let mut counts = vec![0usize; centres.len()];
        for (i, p) in fit.iter().enumerate() {
            counts[assign[i]] += 1;
            for j in 0..d {
                sums[assign[i]][j] += p[j];
            }
        }
        for (c, centre) in centres.iter_mut().enumerate() {
            if counts[c] > 0 {
                for j in 0..d {
                    centre[j] = sums[c][j] / counts[c] as f64;
                }
            }
        }
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); centres.len()];
    for (i, p) in z.iter().enumerate() {
        members[nearest(p, &centres)].push(i);
    }
    let mut groups: Vec<Group> = members
        .into_iter()
        .filter(|m| !m.is_empty())
        .map(|m| {
            let size = m.len();
            let avg = |j: usize, src: &[Vec<f64>]| {
                m.iter().map(|&i| src[i][j]).sum::<f64>() / size as f64
            };
            let zs: Vec<f64> = (0..d).map(|j| avg(j, &z)).collect();
            let mut telling: Vec<(f64, String)> = zs
                .iter()
                .enumerate()
                .filter(|(_, v)| v.abs() >= 0.5)
                .filter_map(|(j, v)| {
                    let word = if *v > 0.0 {
                        features[j].high
                    } else {
                        features[j].low
                    };
                    (!word.is_empty()).then(|| (v.abs(), word.to_string()))
                })
                .collect();
            telling.sort_by(|a, b| b.0.total_cmp(&a.0));
            let words: Vec<String> = telling.into_iter().take(3).map(|t| t.1).collect();
            Group {
                size,
                means: (0..d)
                    .map(|j| (features[j].name.to_string(), round(avg(j, rows))))
                    .collect(),
                z: zs
                    .iter()
                    .enumerate()
                    .map(|(j, v)| (features[j].name.to_string(), round(*v)))
                    .collect(),
                description: if words.is_empty() {
                    "typical customers".to_string()
                } else {
                    words.join(", ")
                },
                members: m,
            }
        })
        .collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g.size));
    groups
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: [Feature; 2] = [
        Feature {
            name: "monetary",
            high: "big spenders",
            low: "low spenders",
        },
        Feature {
            name: "engagement",
            high: "highly engaged",
            low: "disengaged",
        },
    ];

    #[test]
    fn separates_and_describes_groups() {
        let mut rows = Vec::new();
        for i in 0..300 {
            let j = (i % 10) as f64;
            rows.push(match i % 3 {
                0 => vec![1000.0 + j, 90.0 + j],
                1 => vec![10.0 + j, 5.0 + j],
                _ => vec![10.0 + j, 95.0 - j],
            });
        }
        let g = cluster(&rows, &F, 3, 42);
        assert_eq!(g.len(), 3);
        assert!(g.iter().all(|x| x.size == 100), "{g:?}");
        let big = g
            .iter()
            .find(|x| x.description.contains("big spenders"))
            .expect("a big-spender group");
        assert!(big.members.iter().all(|&i| i % 3 == 0));
        assert!(g.iter().any(|x| x.description.contains("disengaged")));
        // Deterministic.
        let again = cluster(&rows, &F, 3, 42);
        assert_eq!(
            g.iter().map(|x| &x.members).collect::<Vec<_>>(),
            again.iter().map(|x| &x.members).collect::<Vec<_>>()
        );
    }
}
