//! Categorical features (`data.categorical`): their text read as codes, and codes as one-hot
//! columns.
//!
//! A reader (of a file or of a request body) turns a categorical field's text into a code, an
//! `f32` in the feature's place of the row: the category's index, [`UNSEEN`] for a category the
//! model does not know (where `data.unseen: ignore` allows one), NaN for a missing value (where
//! `data.missing` allows one). Rows keep one value per feature until [`OneHot::encode`] turns
//! them into what the network or graph reads: the numeric features in signature order, then each
//! categorical feature's categories as 0/1 columns (all zeros for an unseen or missing one).
//! Training learns the categories from the training file ([`Learner`]); everything after reads
//! with the recorded ones ([`Vocabulary`]).

use std::collections::HashMap;

use mlops_artifacts::training::Categories;
pub use mlops_manifest::model::Unseen;

/// The code of a category the model does not know (`data.unseen: ignore`).
pub const UNSEEN: f32 = -1.0;

/// The most categories one column may have: beyond it the column is more likely an identifier
/// than a category, and its one-hot columns would dwarf the rest of the model.
pub const MAX_CATEGORIES: usize = 1000;

/// Turns a categorical feature's text into its code.
pub trait Coder {
    /// Whether feature `i` (an index into the features read) is categorical.
    fn categorical(&self, i: usize) -> bool;
    /// The code of `text` (trimmed, not empty) in feature `i`, or why it has none.
    fn code(&mut self, i: usize, text: &str) -> Result<f32, String>;
}

/// Numeric features only.
#[derive(Debug, Clone, Copy, Default)]
pub struct Numeric;

impl Coder for Numeric {
    fn categorical(&self, _: usize) -> bool {
        false
    }
    fn code(&mut self, _: usize, text: &str) -> Result<f32, String> {
        Err(format!("`{text}` is not a number"))
    }
}

/// The categories of a training file, learnt as it is read: codes in the order first seen,
/// put in their recorded order by [`Learner::finish`].
#[derive(Debug, Clone)]
pub struct Learner {
    /// Per feature: the categories seen so far (and their codes), or `None` for a numeric one.
    columns: Vec<Option<Seen>>,
    names: Vec<String>,
}

/// A column's categories in the order first seen, and each one's code (its place there).
type Seen = (HashMap<String, u32>, Vec<String>);

impl Learner {
    /// A learner for `features`, of which `categorical` are categorical.
    pub fn new(features: &[String], categorical: &[String]) -> Self {
        Self {
            columns: features
                .iter()
                .map(|f| categorical.contains(f).then(Default::default))
                .collect(),
            names: features.to_vec(),
        }
    }

    /// The categories, sorted, and for each feature the map from the codes handed out to the
    /// sorted ones (`None` for a numeric feature).
    pub fn finish(self) -> (Vec<Categories>, Vec<Option<Vec<f32>>>) {
        let mut categories = Vec::new();
        let mut remaps = Vec::new();
        for (column, name) in self.columns.into_iter().zip(self.names) {
            let Some((_, seen)) = column else {
                remaps.push(None);
                continue;
            };
            let mut order: Vec<usize> = (0..seen.len()).collect();
            sort_categories(&mut order, &seen);
            let mut remap = vec![0f32; seen.len()];
            for (new, &old) in order.iter().enumerate() {
                if let Some(slot) = remap.get_mut(old) {
                    *slot = new as f32;
                }
            }
            let values = order.iter().filter_map(|&i| seen.get(i).cloned()).collect();
            categories.push(Categories {
                column: name,
                values,
            });
            remaps.push(Some(remap));
        }
        (categories, remaps)
    }
}

/// Sorts indices into `values`: as numbers when every value is one, else by text (byte order,
/// which is Unicode code point order), as scikit-learn's `OneHotEncoder` orders a column's
/// categories.
fn sort_categories(order: &mut [usize], values: &[String]) {
    let text = |i: &usize| values.get(*i).map_or("", String::as_str);
    let numbers: Option<Vec<f64>> = values.iter().map(|v| v.parse::<f64>().ok()).collect();
    match numbers {
        Some(n) if n.iter().all(|v| v.is_finite()) => order.sort_by(|a, b| {
            let (x, y) = (
                n.get(*a).copied().unwrap_or(0.0),
                n.get(*b).copied().unwrap_or(0.0),
            );
            x.total_cmp(&y).then_with(|| text(a).cmp(text(b)))
        }),
        _ => order.sort_by(|a, b| text(a).cmp(text(b))),
    }
}

impl Coder for Learner {
    fn categorical(&self, i: usize) -> bool {
        matches!(self.columns.get(i), Some(Some(_)))
    }
    fn code(&mut self, i: usize, text: &str) -> Result<f32, String> {
        let name = self.names.get(i).map_or("", String::as_str);
        let Some(Some((codes, seen))) = self.columns.get_mut(i) else {
            return Err(format!("feature `{name}` is not categorical"));
        };
        if let Some(&code) = codes.get(text) {
            return Ok(code as f32);
        }
        if seen.len() == MAX_CATEGORIES {
            return Err(format!(
                "categorical feature `{name}` has more than {MAX_CATEGORIES} distinct values; \
                 is it an identifier? Leave it out of `data.features`, or group its values"
            ));
        }
        let code = seen.len() as u32;
        codes.insert(text.to_owned(), code);
        seen.push(text.to_owned());
        Ok(code as f32)
    }
}

/// One categorical feature's categories, as a model records them.
#[derive(Debug, Clone)]
pub struct Column {
    name: String,
    codes: HashMap<String, u32>,
    known: Vec<String>,
    unseen: Unseen,
}

impl Column {
    /// The code of `text`, or why it has none.
    pub fn code(&self, text: &str) -> Result<f32, String> {
        match (self.codes.get(text), self.unseen) {
            (Some(&code), _) => Ok(code as f32),
            (None, Unseen::Ignore) => Ok(UNSEEN),
            (None, Unseen::Error) => Err(format!(
                "feature `{}` is `{}`, a category the model was not trained on (it knows {})",
                self.name,
                text.chars().take(40).collect::<String>(),
                crate::data::preview(&self.known.iter().map(String::as_str).collect::<Vec<_>>())
            )),
        }
    }
}

/// The recorded categories of a model's categorical features, by feature index.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    columns: Vec<Option<Column>>,
}

impl Vocabulary {
    /// The vocabulary of a model with these features and categories.
    pub fn new(features: &[String], categorical: &[Categories], unseen: Unseen) -> Self {
        Self {
            columns: features
                .iter()
                .map(|f| {
                    categorical.iter().find(|c| &c.column == f).map(|c| Column {
                        name: f.clone(),
                        codes: c
                            .values
                            .iter()
                            .enumerate()
                            .map(|(i, v)| (v.clone(), i as u32))
                            .collect(),
                        known: c.values.clone(),
                        unseen,
                    })
                })
                .collect(),
        }
    }

    /// Whether no feature is categorical.
    pub fn is_empty(&self) -> bool {
        self.columns.iter().all(Option::is_none)
    }

    /// Feature `i`'s categories, when it is categorical.
    pub fn column(&self, i: usize) -> Option<&Column> {
        self.columns.get(i).and_then(Option::as_ref)
    }

    /// The category with code `code` in feature `i` (`None` for an unseen or missing one).
    pub fn category(&self, i: usize, code: f32) -> Option<&str> {
        let column = self.column(i)?;
        if code.is_nan() || code < 0.0 {
            return None;
        }
        column.known.get(code as usize).map(String::as_str)
    }
}

impl Coder for Vocabulary {
    fn categorical(&self, i: usize) -> bool {
        self.column(i).is_some()
    }
    fn code(&mut self, i: usize, text: &str) -> Result<f32, String> {
        match self.column(i) {
            Some(c) => c.code(text),
            None => Err(format!("`{text}` is not a number")),
        }
    }
}

/// Rows of one value per feature (codes for categorical ones) to the inputs a model reads.
#[derive(Debug, Clone, PartialEq)]
pub struct OneHot {
    /// The numeric features' indices, in order.
    numeric: Vec<usize>,
    /// Each categorical feature's index and category count, in order.
    blocks: Vec<(usize, usize)>,
    width: usize,
    inputs: usize,
}

impl OneHot {
    /// The encoding of rows of `features` with these categorical ones.
    pub fn new(features: &[String], categorical: &[Categories]) -> Self {
        let position = |c: &Categories| features.iter().position(|f| *f == c.column);
        let blocks: Vec<(usize, usize)> = categorical
            .iter()
            .filter_map(|c| position(c).map(|i| (i, c.values.len())))
            .collect();
        let numeric: Vec<usize> = (0..features.len())
            .filter(|i| !blocks.iter().any(|(at, _)| at == i))
            .collect();
        let inputs = numeric.len() + blocks.iter().map(|(_, n)| n).sum::<usize>();
        Self {
            numeric,
            blocks,
            width: features.len(),
            inputs,
        }
    }

    /// Whether rows pass as they are (no categorical feature).
    pub fn is_identity(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Values per row read.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Values per row the model reads.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Appends the encoding of `rows` (`n * width` values) to `out` (`n * inputs` values).
    pub fn encode(&self, rows: &[f32], out: &mut Vec<f32>) {
        let width = self.width.max(1);
        out.reserve(rows.len() / width * self.inputs);
        for row in rows.chunks(width) {
            out.extend(
                self.numeric
                    .iter()
                    .map(|&i| row.get(i).copied().unwrap_or(0.0)),
            );
            for &(i, n) in &self.blocks {
                let start = out.len();
                out.resize(start + n, 0.0);
                let code = row.get(i).copied().unwrap_or(f32::NAN);
                if code >= 0.0
                    && let Some(one) = out.get_mut(start + code as usize)
                    && (code as usize) < n
                {
                    *one = 1.0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn training_categories_are_sorted_and_codes_remapped() {
        let features = names(&["x", "color", "size"]);
        let mut l = Learner::new(&features, &names(&["color", "size"]));
        assert!(!l.categorical(0) && l.categorical(1) && l.categorical(2));
        let codes: Vec<f32> = ["red", "blue", "red", "green"]
            .iter()
            .map(|t| l.code(1, t).unwrap())
            .collect();
        assert_eq!(codes, [0.0, 1.0, 0.0, 2.0]);
        for t in ["10", "9", "10.5"] {
            l.code(2, t).unwrap();
        }
        let (categories, remaps) = l.finish();
        assert_eq!(categories[0].values, ["blue", "green", "red"]);
        // Every value a number: numeric order, not text order.
        assert_eq!(categories[1].values, ["9", "10", "10.5"]);
        assert_eq!(remaps[0], None);
        // red (0) -> 2, blue (1) -> 0, green (2) -> 1.
        assert_eq!(remaps[1].as_deref(), Some(&[2.0, 0.0, 1.0][..]));
        assert_eq!(remaps[2].as_deref(), Some(&[1.0, 0.0, 2.0][..]));
    }

    #[test]
    fn too_many_categories_is_an_error_naming_the_column() {
        let features = names(&["id"]);
        let mut l = Learner::new(&features, &features);
        for i in 0..MAX_CATEGORIES {
            l.code(0, &i.to_string()).unwrap();
        }
        let e = l.code(0, "one more").unwrap_err();
        assert!(e.contains("`id` has more than 1000"), "{e}");
        // A known one still codes.
        assert_eq!(l.code(0, "7").unwrap(), 7.0);
    }

    #[test]
    fn unseen_categories_follow_the_policy() {
        let features = names(&["color", "x"]);
        let cats = [Categories {
            column: "color".into(),
            values: names(&["blue", "red"]),
        }];
        let strict = Vocabulary::new(&features, &cats, Unseen::Error);
        assert_eq!(strict.column(0).unwrap().code("red").unwrap(), 1.0);
        let e = strict.column(0).unwrap().code("purple").unwrap_err();
        assert!(
            e.contains("`color` is `purple`") && e.contains("`blue`, `red`"),
            "{e}"
        );
        assert!(strict.column(1).is_none());
        let lenient = Vocabulary::new(&features, &cats, Unseen::Ignore);
        assert_eq!(lenient.column(0).unwrap().code("purple").unwrap(), UNSEEN);
        assert_eq!(lenient.category(0, 1.0), Some("red"));
        assert_eq!(lenient.category(0, UNSEEN), None);
    }

    #[test]
    fn one_hot_puts_numbers_first_then_each_category_block() {
        let features = names(&["color", "x", "size", "y"]);
        let cats = [
            Categories {
                column: "color".into(),
                values: names(&["blue", "green", "red"]),
            },
            Categories {
                column: "size".into(),
                values: names(&["L", "S"]),
            },
        ];
        let h = OneHot::new(&features, &cats);
        assert_eq!((h.width(), h.inputs()), (4, 7));
        let mut out = Vec::new();
        // red, 1.5, S, 2 | unseen, 3, missing, 4
        h.encode(&[2.0, 1.5, 1.0, 2.0, UNSEEN, 3.0, f32::NAN, 4.0], &mut out);
        assert_eq!(
            out,
            [
                1.5, 2.0, 0.0, 0.0, 1.0, 0.0, 1.0, //
                3.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0
            ]
        );
        assert!(OneHot::new(&features, &[]).is_identity());
    }
}
