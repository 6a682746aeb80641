//! A confusion matrix (Burn has none): counts of (true class, predicted class).

use serde::{Deserialize, Serialize};

/// `counts[t][p]`: how many examples of true class `t` were predicted as `p`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// An all-zero matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self {
            counts: vec![vec![0; classes]; classes],
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.counts.len()
    }

    /// Records one example.
    ///
    /// # Panics
    /// If either class is out of range: labels are validated when the data is read.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.counts[truth][predicted] += 1;
    }

    /// The counts, rows = true class, columns = predicted class.
    pub fn counts(&self) -> &[Vec<u64>] {
        &self.counts
    }

    /// Examples recorded.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Examples of each true class.
    pub fn support(&self) -> Vec<u64> {
        self.counts.iter().map(|row| row.iter().sum()).collect()
    }

    /// Correct predictions of each true class.
    pub fn correct(&self) -> Vec<u64> {
        (0..self.classes()).map(|c| self.counts[c][c]).collect()
    }

    /// Overall accuracy (0 when empty).
    pub fn accuracy(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        self.correct().iter().sum::<u64>() as f64 / total as f64
    }

    /// Accuracy within each true class (recall); `None` for a class with no example.
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        self.correct()
            .iter()
            .zip(self.support())
            .map(|(&c, n)| (n > 0).then(|| c as f64 / n as f64))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hand_made_predictions() {
        // truth -> predicted: class 0 right twice and once taken for 2; class 1 always taken
        // for 0; class 2 right once; class 3 never seen.
        let pairs = [(0, 0), (0, 0), (0, 2), (1, 0), (1, 0), (2, 2)];
        let mut m = ConfusionMatrix::new(4);
        for (t, p) in pairs {
            m.add(t, p);
        }
        assert_eq!(
            m.counts(),
            [
                vec![2, 0, 1, 0],
                vec![2, 0, 0, 0],
                vec![0, 0, 1, 0],
                vec![0, 0, 0, 0]
            ]
        );
        assert_eq!(m.total(), 6);
        assert_eq!(m.support(), [3, 2, 1, 0]);
        assert!((m.accuracy() - 3.0 / 6.0).abs() < 1e-12);
        assert_eq!(
            m.per_class_accuracy(),
            [Some(2.0 / 3.0), Some(0.0), Some(1.0), None]
        );
    }

    #[test]
    fn empty_matrix_has_zero_accuracy() {
        let m = ConfusionMatrix::new(10);
        assert_eq!(m.total(), 0);
        assert_eq!(m.accuracy(), 0.0);
        assert!(m.per_class_accuracy().iter().all(Option::is_none));
    }
}
