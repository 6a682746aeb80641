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

    /// Of the examples predicted as each class, the share that is that class; `None` for a
    /// class never predicted.
    pub fn precision(&self) -> Vec<Option<f64>> {
        (0..self.classes())
            .map(|p| {
                let predicted: u64 = self.counts.iter().map(|row| row[p]).sum();
                (predicted > 0).then(|| self.counts[p][p] as f64 / predicted as f64)
            })
            .collect()
    }

    /// The harmonic mean of precision and recall of each class; 0 when both are 0, `None`
    /// when either is undefined.
    pub fn f1(&self) -> Vec<Option<f64>> {
        self.precision()
            .into_iter()
            .zip(self.per_class_accuracy())
            .map(|(p, r)| {
                let (p, r) = (p?, r?);
                Some(if p + r == 0.0 {
                    0.0
                } else {
                    2.0 * p * r / (p + r)
                })
            })
            .collect()
    }

    /// The `n` largest off-diagonal counts as (true class, predicted class, count), largest
    /// first; ties in class order.
    pub fn most_confused(&self, n: usize) -> Vec<(usize, usize, u64)> {
        let mut pairs: Vec<(usize, usize, u64)> = (0..self.classes())
            .flat_map(|t| (0..self.classes()).map(move |p| (t, p)))
            .filter(|(t, p)| t != p)
            .map(|(t, p)| (t, p, self.counts[t][p]))
            .filter(|&(_, _, count)| count > 0)
            .collect();
        pairs.sort_by(|a, b| b.2.cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
        pairs.truncate(n);
        pairs
    }
}

/// The mean of the defined values, counting undefined ones as 0 (as scikit-learn's
/// `zero_division=0` does); `None` when there are no classes.
pub fn macro_average(values: &[Option<f64>]) -> Option<f64> {
    (!values.is_empty())
        .then(|| values.iter().map(|v| v.unwrap_or(0.0)).sum::<f64>() / values.len() as f64)
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
    fn precision_recall_f1_and_confused_pairs_by_hand() {
        // truth 0: predicted 0,0,1; truth 1: predicted 1, 0; truth 2: predicted 1, 1, 1.
        let mut m = ConfusionMatrix::new(3);
        for (t, p) in [
            (0, 0),
            (0, 0),
            (0, 1),
            (1, 1),
            (1, 0),
            (2, 1),
            (2, 1),
            (2, 1),
        ] {
            m.add(t, p);
        }
        // Predicted 0: 3 (2 right); predicted 1: 5 (1 right); predicted 2: never.
        assert_eq!(m.precision(), vec![Some(2.0 / 3.0), Some(0.2), None]);
        assert_eq!(
            m.per_class_accuracy(),
            vec![Some(2.0 / 3.0), Some(0.5), Some(0.0)]
        );
        let f1 = m.f1();
        assert!((f1[0].unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!((f1[1].unwrap() - 2.0 * 0.2 * 0.5 / 0.7).abs() < 1e-12);
        assert_eq!(f1[2], None);
        assert_eq!(m.most_confused(2), vec![(2, 1, 3), (0, 1, 1)]);
        assert_eq!(m.most_confused(9).len(), 3);
        let macro_p = macro_average(&m.precision()).unwrap();
        assert!((macro_p - (2.0 / 3.0 + 0.2) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn empty_matrix_has_zero_accuracy() {
        let m = ConfusionMatrix::new(10);
        assert_eq!(m.total(), 0);
        assert_eq!(m.accuracy(), 0.0);
        assert!(m.per_class_accuracy().iter().all(Option::is_none));
    }
}
