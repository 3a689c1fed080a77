//! Which recurrent nodes feed which (one node's `Y` the next one's `X`,
//! through `Squeeze`, `Reshape`, `Transpose(perm = [0, 2, 1, 3])` only), the
//! chains they form, and the selection of [`super::OnnxOptions::nodes`].

use super::fold::Scope;
use super::format_err;
use super::node::{Op, Rec};
use crate::error::{Error, Result};

/// The indices (into `recs`) of the recurrent nodes `recs[r]`'s Y feeds.
pub(super) fn next_of(scopes: &[Scope<'_>], recs: &[Rec<'_>], r: usize) -> Vec<usize> {
    let rec = &recs[r];
    let scope = &scopes[rec.scope];
    let mut out = Vec::new();
    let Some(y) = rec.node.output.first().filter(|y| !y.is_empty()) else {
        return out;
    };
    let mut todo: Vec<&str> = vec![y.as_str()];
    let mut seen = 0usize;
    while let Some(v) = todo.pop() {
        seen += 1;
        if seen > scope.graph.node.len() + 1 {
            break; // a cycle in an invalid graph
        }
        for &(k, j) in scope.consumers.get(v).map(Vec::as_slice).unwrap_or(&[]) {
            let node = &scope.graph.node[k];
            if j != 0 {
                continue;
            }
            if Op::of(node).is_some() {
                if let Some(t) = recs
                    .iter()
                    .position(|x| x.scope == rec.scope && std::ptr::eq(x.node, node))
                    && !out.contains(&t)
                {
                    out.push(t);
                }
                continue;
            }
            let pass = match node.op_type.as_deref() {
                Some("Squeeze" | "Reshape") => true,
                Some("Transpose") => node
                    .attribute
                    .iter()
                    .any(|a| a.name.as_deref() == Some("perm") && a.ints == [0, 2, 1, 3]),
                _ => false,
            };
            if pass && let Some(o) = node.output.first().filter(|o| !o.is_empty()) {
                todo.push(o);
            }
        }
    }
    out
}

/// The chains of recurrent nodes (indices into `recs`), each followed while
/// a node feeds exactly one recurrent node that no other feeds.
pub(super) fn chains(nexts: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = nexts.len();
    let mut preds = vec![0usize; n];
    for ns in nexts {
        for &j in ns {
            preds[j] += 1;
        }
    }
    let mut used = vec![false; n];
    let mut out = Vec::new();
    for start in 0..n {
        if preds[start] != 0 || used[start] {
            continue;
        }
        let mut c = vec![start];
        used[start] = true;
        let mut at = start;
        while let [j] = nexts[at][..] {
            if preds[j] != 1 || used[j] {
                break;
            }
            used[j] = true;
            c.push(j);
            at = j;
        }
        out.push(c);
    }
    // Nodes on cycles or after a fork: one chain each.
    for (i, u) in used.iter().enumerate() {
        if !u {
            out.push(vec![i]);
        }
    }
    out
}

pub(super) fn select(
    scopes: &[Scope<'_>],
    recs: &[Rec<'_>],
    names: &[String],
) -> Result<Vec<usize>> {
    let nexts: Vec<Vec<usize>> = (0..recs.len()).map(|i| next_of(scopes, recs, i)).collect();
    let listing = || {
        chains(&nexts)
            .iter()
            .map(|c| {
                let names: Vec<&str> = c.iter().map(|&i| recs[i].qualified.as_str()).collect();
                format!("[{}]", names.join(" → "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if recs.is_empty() {
        return Err(format_err("the model has no LSTM, GRU or RNN node"));
    }
    if names.is_empty() {
        let cs = chains(&nexts);
        if let [c] = &cs[..] {
            return Ok(c.clone());
        }
        return Err(Error::InvalidArgument(format!(
            "the model's {} recurrent nodes form {} chains: {}; choose one with \
             OnnxOptions::nodes (C: RnncellOnnxOptions.nodes)",
            recs.len(),
            cs.len(),
            listing()
        )));
    }
    let mut chosen: Vec<usize> = Vec::new();
    for name in names {
        let hits: Vec<usize> = (0..recs.len())
            .filter(|&i| recs[i].qualified == *name)
            .collect();
        let hits = if hits.is_empty() {
            (0..recs.len()).filter(|&i| recs[i].name == *name).collect()
        } else {
            hits
        };
        match hits[..] {
            [i] => {
                if chosen.contains(&i) {
                    return Err(Error::InvalidArgument(format!(
                        "node {name:?} is selected twice"
                    )));
                }
                chosen.push(i);
            }
            [] => {
                return Err(Error::InvalidArgument(format!(
                    "the model has no LSTM, GRU or RNN node named {name:?}; its recurrent nodes: \
                     {}",
                    listing()
                )));
            }
            _ => {
                let qs: Vec<&str> = hits.iter().map(|&i| recs[i].qualified.as_str()).collect();
                return Err(Error::InvalidArgument(format!(
                    "{} nodes are named {name:?}; select one by its qualified name: {}",
                    hits.len(),
                    qs.join(", ")
                )));
            }
        }
    }
    for pair in chosen.windows(2) {
        if !nexts[pair[0]].contains(&pair[1]) {
            return Err(Error::InvalidArgument(format!(
                "node {:?} does not take the output Y of node {:?} as its input X (directly or \
                 through Squeeze, Reshape or Transpose(perm = [0, 2, 1, 3]) only), so they do not \
                 stack; chains: {}",
                recs[pair[1]].qualified,
                recs[pair[0]].qualified,
                listing()
            )));
        }
    }
    Ok(chosen)
}
