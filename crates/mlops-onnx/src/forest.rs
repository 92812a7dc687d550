//! The `ai.onnx.ml` tree ensembles, evaluated by mlops instead of tract: tract 0.23 has no
//! `TreeEnsembleRegressor`, refuses the single base value skl2onnx gives a binary
//! gradient-boosting classifier, and walks each tree's leaf list from its start for every tree of
//! every row. Here every node is one entry of a flat array with its children's indices and its
//! leaf's weight range, so a row costs one comparison per level and one add per weight.
//!
//! Semantics, as ONNX specifies them and onnxruntime computes them (checked against it in
//! `tests/onnx.rs`): a row's score per class (or target) is the aggregate (`SUM`, `AVERAGE`,
//! `MIN`, `MAX`; classifiers sum) of the weights of the leaves it reaches, plus `base_values`.
//! A classifier with three classes or more, or two classes both weighted, takes the arg-max of
//! its scores as its label and the post-transform (`NONE`, `SOFTMAX`, `LOGISTIC`) of its scores
//! as its probabilities. A two-class classifier whose weights all go to one class (what
//! gradient boosting writes) has one score `s`: the label is the second class when `s > 0`, and
//! the probabilities are `[logistic(-s), logistic(s)]` (or `[-s, s]` without `LOGISTIC`); when
//! its weights are all positive (a random forest's probabilities) `s` is the second class's
//! probability: the label is the second class when `s > 0.5`, the probabilities `[1 - s, s]`.
//! `PROBIT`, `SOFTMAX_ZERO`, `*_as_tensor` attributes and a post-transform on positive binary
//! weights are refused at load.

use std::collections::HashMap;

use tract_hir::internal::*;
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;

use crate::attribute as attr;

/// Adds the two tree operators to `register`, in place of tract's classifier.
pub(crate) fn register(register: &mut OnnxOpRegister) {
    register.insert("TreeEnsembleClassifier", classifier);
    register.insert("TreeEnsembleRegressor", regressor);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    feature: usize,
    value: f32,
    mode: Mode,
    missing_true: bool,
    yes: usize,
    no: usize,
    /// The leaf's weights: `weights[start..end]`.
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Post {
    None,
    Softmax,
    Logistic,
}

/// A parsed ensemble.
#[derive(Debug, Clone, PartialEq)]
struct Forest {
    nodes: Vec<Node>,
    roots: Vec<usize>,
    /// (class or target, weight), grouped by leaf.
    weights: Vec<(usize, f32)>,
    /// Score columns: classes, or targets.
    columns: usize,
    base: Vec<f32>,
    aggregate: Aggregate,
    post: Post,
    /// Features the trees read (the largest index + 1).
    reads: usize,
}

/// The tree operator tract runs: a classifier's labels and probabilities, or a regressor's
/// values.
#[derive(Debug, Clone, PartialEq)]
struct Trees {
    forest: Forest,
    /// A classifier's labels (INT64 or strings), in the order of its score columns; `None` for
    /// a regressor.
    labels: Option<Arc<Tensor>>,
    /// A two-class classifier whose weights all go to one class (see the module's text).
    binary: bool,
    /// Such a classifier's weights are all positive: its score is the second class's
    /// probability.
    positive: bool,
}

impl Eq for Trees {}

fn ints(node: &NodeProto, name: &str) -> Vec<i64> {
    attr(node, name).map(|a| a.ints.clone()).unwrap_or_default()
}

fn floats(node: &NodeProto, name: &str) -> Vec<f32> {
    attr(node, name)
        .map(|a| a.floats.clone())
        .unwrap_or_default()
}

fn strings(node: &NodeProto, name: &str) -> Vec<String> {
    attr(node, name)
        .map(|a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn text(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

fn index(v: i64, what: &str) -> TractResult<usize> {
    usize::try_from(v).map_err(|_| format_err!("{what} {v} is negative"))
}

/// Parses the attributes both operators share; `prefix` is `class` or `target`.
fn forest(node: &NodeProto, prefix: &str, columns: usize) -> TractResult<Forest> {
    for name in ["nodes_values_as_tensor", "base_values_as_tensor"] {
        ensure!(
            attr(node, name).is_none(),
            "{} with `{name}` (double precision) is not supported",
            node.op_type
        );
    }
    let tree_ids = ints(node, "nodes_treeids");
    let node_ids = ints(node, "nodes_nodeids");
    let features = ints(node, "nodes_featureids");
    let values = floats(node, "nodes_values");
    let modes = strings(node, "nodes_modes");
    let yes = ints(node, "nodes_truenodeids");
    let no = ints(node, "nodes_falsenodeids");
    let missing = ints(node, "nodes_missing_value_tracks_true");
    let n = tree_ids.len();
    ensure!(n > 0, "{} has no nodes", node.op_type);
    for (name, len) in [
        ("nodes_nodeids", node_ids.len()),
        ("nodes_featureids", features.len()),
        ("nodes_values", values.len()),
        ("nodes_modes", modes.len()),
        ("nodes_truenodeids", yes.len()),
        ("nodes_falsenodeids", no.len()),
    ] {
        ensure!(len == n, "`{name}` has {len} entries for {n} nodes");
    }
    // (tree, node) -> position.
    let mut at: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
    let mut roots = Vec::new();
    for (i, (&t, &id)) in tree_ids.iter().zip(&node_ids).enumerate() {
        ensure!(
            at.insert((t, id), i).is_none(),
            "node {id} of tree {t} is given twice"
        );
        if roots.last().map(|&(last, _)| last) != Some(t) {
            roots.push((t, i));
        }
    }
    let mut nodes = Vec::with_capacity(n);
    let mut reads = 0;
    for i in 0..n {
        let mode = match modes.get(i).map(String::as_str) {
            Some("BRANCH_LEQ") => Mode::Leq,
            Some("BRANCH_LT") => Mode::Lt,
            Some("BRANCH_GTE") => Mode::Gte,
            Some("BRANCH_GT") => Mode::Gt,
            Some("BRANCH_EQ") => Mode::Eq,
            Some("BRANCH_NEQ") => Mode::Neq,
            Some("LEAF") => Mode::Leaf,
            other => bail!("unknown node mode {other:?}"),
        };
        let tree = tree_ids.get(i).copied().unwrap_or_default();
        let child = |ids: &[i64]| -> TractResult<usize> {
            let id = ids.get(i).copied().unwrap_or_default();
            at.get(&(tree, id))
                .copied()
                .ok_or_else(|| format_err!("tree {tree} has no node {id}"))
        };
        let (yes_at, no_at) = if mode == Mode::Leaf {
            (i, i)
        } else {
            (child(&yes)?, child(&no)?)
        };
        let feature = index(features.get(i).copied().unwrap_or_default(), "feature")?;
        if mode != Mode::Leaf {
            reads = reads.max(feature + 1);
        }
        nodes.push(Node {
            feature,
            value: values.get(i).copied().unwrap_or_default(),
            mode,
            missing_true: missing.get(i).is_some_and(|&m| m != 0),
            yes: yes_at,
            no: no_at,
            start: 0,
            end: 0,
        });
    }
    // The leaves' weights, grouped by leaf.
    let w_trees = ints(node, &format!("{prefix}_treeids"));
    let w_nodes = ints(node, &format!("{prefix}_nodeids"));
    let w_ids = ints(node, &format!("{prefix}_ids"));
    let w_values = floats(node, &format!("{prefix}_weights"));
    let m = w_trees.len();
    ensure!(
        w_nodes.len() == m && w_ids.len() == m && w_values.len() == m,
        "the `{prefix}_*` attributes have different lengths"
    );
    let mut by_leaf: Vec<Vec<(usize, f32)>> = vec![Vec::new(); n];
    for k in 0..m {
        let (t, id) = (
            w_trees.get(k).copied().unwrap_or_default(),
            w_nodes.get(k).copied().unwrap_or_default(),
        );
        let leaf = *at.get(&(t, id)).ok_or_else(|| {
            format_err!("a weight names node {id} of tree {t}, which is not there")
        })?;
        let column = index(w_ids.get(k).copied().unwrap_or_default(), "class or target")?;
        ensure!(
            column < columns,
            "a weight is for column {column} of {columns}"
        );
        if let Some(list) = by_leaf.get_mut(leaf) {
            list.push((column, w_values.get(k).copied().unwrap_or_default()));
        }
    }
    acyclic(&nodes)?;
    let mut weights = Vec::with_capacity(m);
    for (node, list) in nodes.iter_mut().zip(by_leaf) {
        node.start = weights.len();
        weights.extend(list);
        node.end = weights.len();
    }
    let base = floats(node, "base_values");
    ensure!(
        base.is_empty() || base.len() == columns || base.len() == 1,
        "`base_values` has {} values for {columns} columns",
        base.len()
    );
    let post = match text(node, "post_transform").as_deref().unwrap_or("NONE") {
        "NONE" => Post::None,
        "SOFTMAX" => Post::Softmax,
        "LOGISTIC" => Post::Logistic,
        other => bail!("the post-transform {other} is not supported"),
    };
    let aggregate = match text(node, "aggregate_function").as_deref().unwrap_or("SUM") {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Average,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        other => bail!("the aggregate function {other} is not supported"),
    };
    Ok(Forest {
        nodes,
        roots: roots.into_iter().map(|(_, i)| i).collect(),
        weights,
        columns,
        base,
        aggregate,
        post,
        reads,
    })
}

/// Refuses a tree whose branches lead back to a node already on the path (a row would never
/// reach a leaf): each node is entered once, its children after it.
fn acyclic(nodes: &[Node]) -> TractResult<()> {
    // 0: not seen, 1: on the current path, 2: done.
    let mut state = vec![0u8; nodes.len()];
    for start in 0..nodes.len() {
        if state.get(start) != Some(&0) {
            continue;
        }
        let mut stack = vec![(start, false)];
        while let Some((i, children_done)) = stack.pop() {
            if children_done {
                if let Some(s) = state.get_mut(i) {
                    *s = 2;
                }
                continue;
            }
            match state.get(i) {
                Some(0) => {}
                Some(1) => {
                    bail!("a tree's branches lead back to node {i}: no row would reach a leaf")
                }
                _ => continue,
            }
            if let Some(s) = state.get_mut(i) {
                *s = 1;
            }
            stack.push((i, true));
            if let Some(node) = nodes.get(i).filter(|n| n.mode != Mode::Leaf) {
                for child in [node.yes, node.no] {
                    match state.get(child) {
                        Some(1) => bail!(
                            "a tree's branches lead back to node {child}: no row would reach a leaf"
                        ),
                        Some(0) => stack.push((child, false)),
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(())
}

fn classifier(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let int_labels = attr(node, "classlabels_int64s").filter(|a| !a.ints.is_empty());
    let labels: Tensor = match int_labels {
        Some(a) => tensor1(&a.ints),
        None => {
            let names = strings(node, "classlabels_strings");
            ensure!(!names.is_empty(), "the classifier names no class labels");
            tensor1(&names)
        }
    };
    let classes = labels.len();
    let forest = forest(node, "class", classes)?;
    let used: std::collections::BTreeSet<usize> = forest.weights.iter().map(|w| w.0).collect();
    let binary = classes == 2 && used.len() == 1;
    if binary {
        let positive = forest.weights.iter().all(|w| w.1 >= 0.0);
        ensure!(
            !positive || forest.post == Post::None,
            "a two-class tree classifier with positive weights and a post-transform is not \
             supported"
        );
        ensure!(
            forest.base.len() <= 1 && forest.aggregate == Aggregate::Sum,
            "this two-class tree classifier's base values are not supported"
        );
        ensure!(
            forest.post != Post::Softmax,
            "a two-class tree classifier with one score and SOFTMAX is not supported"
        );
    }
    let positive = forest.weights.iter().all(|w| w.1 >= 0.0);
    let op = Trees {
        forest,
        labels: Some(labels.into_arc_tensor()),
        binary,
        positive,
    };
    Ok((expand(op), vec![]))
}

fn regressor(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let targets = attr(node, "n_targets").map_or(1, |a| a.i);
    let targets = index(targets, "n_targets")?.max(1);
    let forest = forest(node, "target", targets)?;
    ensure!(
        forest.post == Post::None,
        "a tree regressor with a post-transform is not supported"
    );
    let op = Trees {
        forest,
        labels: None,
        binary: false,
        positive: false,
    };
    Ok((expand(op), vec![]))
}

impl Forest {
    /// The leaf of tree `root` that `row` reaches.
    #[inline]
    fn leaf(&self, root: usize, row: &[f32]) -> Option<&Node> {
        let mut node = self.nodes.get(root)?;
        loop {
            let next = match node.mode {
                Mode::Leaf => return Some(node),
                mode => {
                    let x = row.get(node.feature).copied().unwrap_or(f32::NAN);
                    let v = node.value;
                    let yes = if x.is_nan() {
                        node.missing_true
                    } else {
                        match mode {
                            Mode::Leq => x <= v,
                            Mode::Lt => x < v,
                            Mode::Gte => x >= v,
                            Mode::Gt => x > v,
                            Mode::Eq => x == v,
                            Mode::Neq => x != v,
                            Mode::Leaf => true,
                        }
                    };
                    if yes { node.yes } else { node.no }
                }
            };
            node = self.nodes.get(next)?;
        }
    }

    /// The aggregated scores of one row, base values added, into `out` (`columns` long).
    fn scores(&self, row: &[f32], out: &mut [f32], seen: &mut [bool]) {
        out.fill(0.0);
        seen.fill(false);
        for &root in &self.roots {
            let Some(leaf) = self.leaf(root, row) else {
                continue;
            };
            for &(c, w) in self.weights.get(leaf.start..leaf.end).unwrap_or_default() {
                let (Some(o), Some(s)) = (out.get_mut(c), seen.get_mut(c)) else {
                    continue;
                };
                *o = match self.aggregate {
                    Aggregate::Sum | Aggregate::Average => *o + w,
                    Aggregate::Min if *s => o.min(w),
                    Aggregate::Max if *s => o.max(w),
                    Aggregate::Min | Aggregate::Max => w,
                };
                *s = true;
            }
        }
        if self.aggregate == Aggregate::Average {
            let trees = self.roots.len().max(1) as f32;
            out.iter_mut().for_each(|o| *o /= trees);
        }
        match self.base.as_slice() {
            [] => {}
            [one] if self.columns != 1 => {
                if let Some(o) = out.first_mut() {
                    *o += one;
                }
            }
            base => out.iter_mut().zip(base).for_each(|(o, b)| *o += b),
        }
    }
}

fn logistic(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Trees {
    /// Labels (as indices into the classes) and probabilities, or values, for every row.
    fn run(&self, x: &[f32], rows: usize, width: usize) -> (Vec<usize>, Vec<f32>) {
        let f = &self.forest;
        let columns = f.columns;
        let mut out = vec![0.0; columns];
        let mut seen = vec![false; columns];
        let mut winners = Vec::with_capacity(rows);
        let mut scores = Vec::with_capacity(rows * columns);
        for row in x.chunks(width.max(1)).take(rows) {
            f.scores(row, &mut out, &mut seen);
            if self.labels.is_none() {
                scores.extend_from_slice(&out);
                continue;
            }
            if self.binary {
                let s = out.iter().zip(&seen).find(|(_, s)| **s).map_or(
                    // No tree gave a weight: the base value alone.
                    out.first().copied().unwrap_or(0.0),
                    |(o, _)| *o,
                );
                if self.positive {
                    // The score is the second class's probability.
                    winners.push(usize::from(s > 0.5));
                    scores.extend([1.0 - s, s]);
                    continue;
                }
                winners.push(usize::from(s > 0.0));
                match f.post {
                    Post::Logistic => scores.extend([logistic(-s), logistic(s)]),
                    _ => scores.extend([-s, s]),
                }
                continue;
            }
            let mut best = 0;
            for (c, v) in out.iter().enumerate() {
                if *v > out.get(best).copied().unwrap_or(f32::NEG_INFINITY) {
                    best = c;
                }
            }
            winners.push(best);
            match f.post {
                Post::None => scores.extend_from_slice(&out),
                Post::Logistic => scores.extend(out.iter().map(|v| logistic(*v))),
                Post::Softmax => {
                    let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let exp: Vec<f32> = out.iter().map(|v| (v - max).exp()).collect();
                    let sum: f32 = exp.iter().sum();
                    scores.extend(exp.iter().map(|e| e / sum));
                }
            }
        }
        (winners, scores)
    }
}

impl Expansion for Trees {
    fn name(&self) -> StaticName {
        if self.labels.is_some() {
            "TreeEnsembleClassifier".into()
        } else {
            "TreeEnsembleRegressor".into()
        }
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(if self.labels.is_some() { 2 } else { 1 })
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        let Some(input) = inputs.first() else {
            bail!("a tree ensemble takes one input");
        };
        match (&self.labels, outputs) {
            (Some(labels), [label, probabilities]) => {
                s.equals(&label.datum_type, labels.datum_type())?;
                s.equals(&label.rank, 1)?;
                s.equals(&label.shape[0], &input.shape[0])?;
                s.equals(&probabilities.datum_type, DatumType::F32)?;
                s.equals(&probabilities.rank, 2)?;
                s.equals(&probabilities.shape[0], &input.shape[0])?;
                s.equals(&probabilities.shape[1], labels.len().to_dim())?;
            }
            (None, [values]) => {
                s.equals(&values.datum_type, DatumType::F32)?;
                s.equals(&values.rank, 2)?;
                s.equals(&values.shape[0], &input.shape[0])?;
                s.equals(&values.shape[1], self.forest.columns.to_dim())?;
            }
            _ => bail!("a tree ensemble's outputs: a label and probabilities, or values"),
        }
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for Trees {
    fn name(&self) -> StaticName {
        Expansion::name(self)
    }

    op_as_typed_op!();
}

impl EvalOp for Trees {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let input = input.cast_to::<f32>()?;
        let view = input.to_plain_array_view::<f32>()?;
        let shape = view.shape().to_vec();
        let (rows, width) = match shape.as_slice() {
            [rows, width] => (*rows, *width),
            other => bail!("a tree ensemble takes [rows, features], not {other:?}"),
        };
        ensure!(
            width >= self.forest.reads,
            "the trees read feature {} of rows of {width}",
            self.forest.reads.saturating_sub(1)
        );
        let x: Vec<f32> = view.iter().copied().collect();
        let (winners, scores) = self.run(&x, rows, width);
        let columns = self.forest.columns;
        let scores = Tensor::from_shape(&[rows, columns], &scores)?;
        match &self.labels {
            None => Ok(tvec!(scores.into_tvalue())),
            Some(labels) => Ok(tvec!(
                pick(labels, &winners)?.into_tvalue(),
                scores.into_tvalue()
            )),
        }
    }
}

/// The labels at `winners`, as a tensor of the labels' type.
fn pick(labels: &Tensor, winners: &[usize]) -> TractResult<Tensor> {
    if let Ok(ints) = labels.to_plain_array_view::<i64>() {
        let picked: Vec<i64> = winners
            .iter()
            .map(|&w| ints.get(w).copied().unwrap_or_default())
            .collect();
        return Ok(tensor1(&picked));
    }
    let texts = labels.to_plain_array_view::<String>()?;
    let picked: Vec<String> = winners
        .iter()
        .map(|&w| texts.get(w).cloned().unwrap_or_default())
        .collect();
    Ok(tensor1(&picked))
}

impl TypedOp for Trees {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let Some(input) = inputs.first() else {
            bail!("a tree ensemble takes one input");
        };
        let rows = input
            .shape
            .iter()
            .next()
            .ok_or_else(|| format_err!("a tree ensemble's input has no rows axis"))?;
        let columns = self.forest.columns;
        Ok(match &self.labels {
            Some(labels) => tvec!(
                labels.datum_type().fact([rows.clone()]),
                f32::fact([rows.clone(), columns.to_dim()])
            ),
            None => tvec!(f32::fact([rows.clone(), columns.to_dim()])),
        })
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn branch(feature: usize, value: f32, mode: Mode, yes: usize, no: usize) -> Node {
        Node {
            feature,
            value,
            mode,
            missing_true: true,
            yes,
            no,
            start: 0,
            end: 0,
        }
    }

    fn leaf(start: usize, end: usize) -> Node {
        Node {
            feature: 0,
            value: 0.0,
            mode: Mode::Leaf,
            missing_true: false,
            yes: 0,
            no: 0,
            start,
            end,
        }
    }

    /// Two one-split trees over features 0 and 1; tree 1 splits with `mode`.
    fn forest(aggregate: Aggregate, mode: Mode) -> Forest {
        Forest {
            nodes: vec![
                branch(0, 1.0, Mode::Leq, 1, 2),
                leaf(0, 1),
                leaf(1, 2),
                branch(1, 5.0, mode, 4, 5),
                leaf(2, 3),
                leaf(3, 4),
            ],
            roots: vec![0, 3],
            weights: vec![(0, 10.0), (0, 20.0), (0, 1.0), (0, 2.0)],
            columns: 1,
            base: vec![0.5],
            aggregate,
            post: Post::None,
            reads: 2,
        }
    }

    fn score(f: &Forest, row: &[f32]) -> f32 {
        let (mut out, mut seen) = (vec![0.0], vec![false]);
        f.scores(row, &mut out, &mut seen);
        out[0]
    }

    #[test]
    fn rows_reach_their_leaves_and_are_aggregated_as_asked() {
        let sum = forest(Aggregate::Sum, Mode::Lt);
        // 1 <= 1 takes the true branch (10); 5 < 5 does not (2); plus the base value.
        assert_eq!(score(&sum, &[1.0, 5.0]), 12.5);
        assert_eq!(score(&sum, &[1.5, 4.0]), 21.5);
        // A missing value follows `missing_true`.
        assert_eq!(score(&sum, &[f32::NAN, f32::NAN]), 11.5);
        assert_eq!(
            score(&forest(Aggregate::Average, Mode::Lt), &[1.0, 5.0]),
            6.5
        );
        assert_eq!(score(&forest(Aggregate::Min, Mode::Lt), &[1.0, 5.0]), 2.5);
        assert_eq!(score(&forest(Aggregate::Max, Mode::Lt), &[1.0, 5.0]), 10.5);
        for (mode, at_five) in [
            (Mode::Leq, 1.0),
            (Mode::Gte, 1.0),
            (Mode::Gt, 2.0),
            (Mode::Eq, 1.0),
            (Mode::Neq, 2.0),
        ] {
            let f = forest(Aggregate::Sum, mode);
            assert_eq!(score(&f, &[9.0, 5.0]) - 20.5, at_five, "{mode:?}");
        }
    }

    #[test]
    fn a_tree_that_loops_is_refused() {
        let mut f = forest(Aggregate::Sum, Mode::Lt);
        assert!(acyclic(&f.nodes).is_ok());
        // Node 3's false branch back to itself.
        f.nodes[3].no = 3;
        let m = acyclic(&f.nodes).expect_err("a loop").to_string();
        assert!(m.contains("node 3"), "{m}");
        // A longer loop: 0 -> 1 (made a branch) -> 0.
        let mut f = forest(Aggregate::Sum, Mode::Lt);
        f.nodes[1] = branch(0, 0.0, Mode::Leq, 0, 2);
        assert!(acyclic(&f.nodes).is_err());
    }

    #[test]
    fn two_class_layouts_follow_onnxruntime() {
        let mut f = forest(Aggregate::Sum, Mode::Lt);
        f.base = Vec::new();
        f.post = Post::Logistic;
        f.weights = vec![(0, -1.0), (0, 2.0), (0, 0.5), (0, -0.25)];
        let mut trees = Trees {
            forest: f,
            labels: Some(tensor1(&[3i64, 7]).into_arc_tensor()),
            binary: true,
            positive: false,
        };
        // -1 + -0.25 < 0: the first class; 2 + 0.5 > 0: the second.
        let (winners, p) = trees.run(&[0.0, 9.0, 9.0, 0.0], 2, 2);
        assert_eq!(winners, [0, 1]);
        assert!((p[1] - logistic(-1.25)).abs() < 1e-7 && (p[0] + p[1] - 1.0).abs() < 1e-6);
        assert!((p[3] - logistic(2.5)).abs() < 1e-7);
        // Positive weights: the score is the second class's probability.
        trees.positive = true;
        trees.forest.post = Post::None;
        trees.forest.weights = vec![(0, 0.2), (0, 0.4), (0, 0.1), (0, 0.5)];
        // 0.2 + 0.5 > 0.5: the second class; 0.4 + 0.1 is not over 0.5: the first.
        let (winners, p) = trees.run(&[0.0, 9.0, 9.0, 0.0], 2, 2);
        assert_eq!(winners, [1, 0]);
        assert!(
            (p[1] - 0.7).abs() < 1e-6 && (p[0] - 0.3).abs() < 1e-6,
            "{p:?}"
        );
        assert!((p[3] - 0.5).abs() < 1e-6, "{p:?}");
        let picked = pick(trees.labels.as_deref().expect("labels"), &winners).expect("picked");
        assert_eq!(picked, tensor1(&[7i64, 3]));
    }
}
