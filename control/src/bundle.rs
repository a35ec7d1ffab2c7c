//! Multi-message bundles (`bundle_open`, `bundle_add`, `bundle_commit`, `bundle_discard`):
//! flow, group and meter mods a session stages over several frames and then applies all or
//! nothing.
//!
//! Slow path, owned by the control thread. Each session holds its own [`Bundles`] (like its
//! subscription); the server holds one [`StagingBudget`] for all sessions. Dropping a session's
//! `Bundles` discards its open bundles; the server gives their bytes back to the budget with
//! [`StagingBudget::release`].
//!
//! **Bounds.** A session has at most [`MAX_OPEN_BUNDLES`] open bundles; a bundle holds at most
//! [`MAX_BUNDLE_OPS`] ops; a session's staged bundles cost at most
//! [`StagingBudget::max_session_bytes`] and all sessions' at most
//! [`StagingBudget::max_total_bytes`]. The cost of a `bundle_add` is its payload length plus,
//! per op, [`OP_OVERHEAD`] and the heap bytes of the converted op and its path map (action
//! lists, bucket lists, match fields: [`staged_heap_bytes`]), so memory stays bounded
//! whatever the ops look like (a 6-byte `"all",` stages a 32-byte action and its index). A
//! `bundle_add` that would pass a bound is refused with `limit` and stages nothing.
//!
//! **Validation.** `bundle_add` converts each op at once (`to_bundle_op`: syntax, field names,
//! values; errors name `body.ops[i]…`, `i` the index in that message) and stages nothing from
//! a message with a bad op. The checks that need the tables (prerequisites, `goto_table`,
//! groups, meters, table capacity) run at `bundle_commit`, through [`Switch::bundle_ops`];
//! their errors name the op by its index in the whole bundle: `bundle.ops[N]…`
//! (`bundle.ops[N].group_mod…` for a group op). A commit, failed or
//! not, closes the bundle (OpenFlow semantics).

use std::collections::BTreeMap;
use std::mem::size_of;

use datapath::ofp::pipeline::BundleOp;
use datapath::switch::Switch;

use crate::proto::{
    BundleAddRequest, BundleReply, ErrorCode, MAX_BUNDLE_OPS, MAX_OPEN_BUNDLES, OpPathMap,
    ProtoError,
};

/// Bytes counted per staged op on top of the `bundle_add` payload: the converted op and its
/// error-path map.
pub(crate) const OP_OVERHEAD: usize = size_of::<BundleOp>() + size_of::<OpPathMap>();

/// Heap bytes a staged op holds beyond [`OP_OVERHEAD`]: its vectors' capacities.
pub(crate) fn staged_heap_bytes(op: &BundleOp, map: &OpPathMap) -> usize {
    use datapath::ofp::MatchField;
    use datapath::ofp::action::Action;
    use datapath::ofp::group::Bucket;
    let actions = |v: &Vec<Action>| v.capacity() * size_of::<Action>();
    let op_bytes = match op {
        BundleOp::Flow(fm) => {
            fm.fields.capacity() * size_of::<MatchField>()
                + actions(&fm.instructions.apply)
                + actions(&fm.instructions.write)
        }
        BundleOp::Group(gm) => {
            gm.buckets.capacity() * size_of::<Bucket>()
                + gm.buckets
                    .iter()
                    .map(|b| actions(&b.actions))
                    .sum::<usize>()
        }
        BundleOp::Meter(_) => 0,
    };
    op_bytes + map.heap_bytes()
}

/// Frees a converted op's spare capacity before it is staged.
fn shrink(op: &mut BundleOp) {
    match op {
        BundleOp::Flow(fm) => {
            fm.fields.shrink_to_fit();
            fm.instructions.apply.shrink_to_fit();
            fm.instructions.write.shrink_to_fit();
        }
        BundleOp::Group(gm) => {
            gm.buckets.shrink_to_fit();
            for b in &mut gm.buckets {
                b.actions.shrink_to_fit();
            }
        }
        BundleOp::Meter(_) => {}
    }
}

/// The server-wide account of staged bytes, and the bounds.
#[derive(Debug)]
pub(crate) struct StagingBudget {
    /// Most bytes one session's open bundles may cost.
    pub(crate) max_session_bytes: usize,
    /// Most bytes all sessions' open bundles may cost together.
    pub(crate) max_total_bytes: usize,
    /// Bytes staged now, all sessions.
    used: usize,
}

impl StagingBudget {
    /// An empty account with these bounds.
    pub(crate) fn new(max_session_bytes: usize, max_total_bytes: usize) -> Self {
        Self {
            max_session_bytes,
            max_total_bytes,
            used: 0,
        }
    }

    /// Gives back `bytes` (a closed session's [`Bundles::bytes`]).
    pub(crate) fn release(&mut self, bytes: usize) {
        self.used = self.used.saturating_sub(bytes);
    }

    /// Bytes staged now, all sessions.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used
    }
}

/// One open bundle.
#[derive(Debug, Default)]
struct Staged {
    /// The converted ops, in order.
    ops: Vec<BundleOp>,
    /// For each, how to name its parts in errors (empty prefix until needed).
    maps: Vec<OpPathMap>,
    /// What it costs against the budget.
    bytes: usize,
}

/// The open bundles of one session.
#[derive(Debug, Default)]
pub(crate) struct Bundles {
    open: BTreeMap<u32, Staged>,
    /// Cost of all of them.
    bytes: usize,
}

fn limit(field: &str, message: String) -> ProtoError {
    ProtoError::field(ErrorCode::Limit, field, message)
}

fn no_bundle(id: u32) -> ProtoError {
    ProtoError::field(
        ErrorCode::NotFound,
        "body.bundle_id",
        format!("no open bundle {id} in this session"),
    )
}

impl Bundles {
    /// What this session's open bundles cost against the budget.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of open bundles.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }

    /// `bundle_open`.
    ///
    /// # Errors
    /// `exists` (the id is open), `limit` ([`MAX_OPEN_BUNDLES`] are open), on `body.bundle_id`.
    pub(crate) fn open(&mut self, id: u32) -> Result<(), ProtoError> {
        if self.open.contains_key(&id) {
            return Err(ProtoError::field(
                ErrorCode::Exists,
                "body.bundle_id",
                format!("bundle {id} is already open in this session"),
            ));
        }
        if self.open.len() >= MAX_OPEN_BUNDLES {
            return Err(limit(
                "body.bundle_id",
                format!("{MAX_OPEN_BUNDLES} bundles are open in this session (the maximum)"),
            ));
        }
        self.open.insert(id, Staged::default());
        Ok(())
    }

    /// `bundle_add`: converts and stages `req.ops`; `payload_len` is the request's size. Returns
    /// the number of ops the bundle holds now.
    ///
    /// # Errors
    /// `not_found` (`body.bundle_id`), `limit` (`body.ops`), or the conversion error of the
    /// first bad op (`body.ops[i]…`); nothing is staged then.
    pub(crate) fn add(
        &mut self,
        req: &BundleAddRequest,
        payload_len: usize,
        budget: &mut StagingBudget,
    ) -> Result<u64, ProtoError> {
        let session_bytes = self.bytes;
        let staged = self
            .open
            .get_mut(&req.bundle_id)
            .ok_or_else(|| no_bundle(req.bundle_id))?;
        let total = staged.ops.len().saturating_add(req.ops.len());
        if total > MAX_BUNDLE_OPS {
            return Err(limit(
                "body.ops",
                format!(
                    "bundle {} would hold {total} ops (max {MAX_BUNDLE_OPS}); nothing added",
                    req.bundle_id
                ),
            ));
        }
        let check = |cost: usize, budget: &StagingBudget| {
            if session_bytes.saturating_add(cost) > budget.max_session_bytes {
                return Err(limit(
                    "body.ops",
                    format!(
                        "this session's open bundles would hold more than {} bytes; nothing added",
                        budget.max_session_bytes
                    ),
                ));
            }
            if budget.used.saturating_add(cost) > budget.max_total_bytes {
                return Err(limit(
                    "body.ops",
                    format!(
                        "the open bundles of all sessions would hold more than {} bytes; nothing added",
                        budget.max_total_bytes
                    ),
                ));
            }
            Ok(())
        };
        // A lower bound first (refused before converting anything), then the real cost.
        let mut cost = payload_len.saturating_add(req.ops.len().saturating_mul(OP_OVERHEAD));
        check(cost, budget)?;
        let mut ops = Vec::with_capacity(req.ops.len());
        let mut maps = Vec::with_capacity(req.ops.len());
        for (i, op) in req.ops.iter().enumerate() {
            let (mut op, map) = op.to_bundle_op(&format!("body.ops[{i}]"))?;
            let mut map = map.without_prefix();
            shrink(&mut op);
            map.shrink_to_fit();
            cost = cost.saturating_add(staged_heap_bytes(&op, &map));
            ops.push(op);
            maps.push(map);
        }
        check(cost, budget)?;
        staged.ops.append(&mut ops);
        staged.maps.append(&mut maps);
        staged.bytes += cost;
        self.bytes += cost;
        budget.used += cost;
        Ok(staged.ops.len() as u64)
    }

    /// `bundle_commit`: closes the bundle and applies its ops all or nothing, published as one
    /// change ([`Switch::bundle_ops`]).
    ///
    /// # Errors
    /// `not_found` (`body.bundle_id`); the error of the first op that fails, named
    /// `bundle.ops[N]…` with `N` its index in the bundle (nothing changed). Either way the
    /// bundle is closed.
    pub(crate) fn commit(
        &mut self,
        id: u32,
        switch: &mut Switch,
        budget: &mut StagingBudget,
    ) -> Result<BundleReply, ProtoError> {
        let mut staged = self.close(id, budget)?;
        let results = switch.bundle_ops(&staged.ops).map_err(|(i, e)| {
            let map = staged
                .maps
                .get_mut(i)
                .map(std::mem::take)
                .unwrap_or_default();
            map.error(&format!("bundle.ops[{i}]"), &e)
        })?;
        Ok(BundleReply::from_results(&results))
    }

    /// `bundle_discard`.
    ///
    /// # Errors
    /// `not_found` (`body.bundle_id`).
    pub(crate) fn discard(
        &mut self,
        id: u32,
        budget: &mut StagingBudget,
    ) -> Result<(), ProtoError> {
        self.close(id, budget).map(drop)
    }

    fn close(&mut self, id: u32, budget: &mut StagingBudget) -> Result<Staged, ProtoError> {
        let staged = self.open.remove(&id).ok_or_else(|| no_bundle(id))?;
        self.bytes = self.bytes.saturating_sub(staged.bytes);
        budget.release(staged.bytes);
        Ok(staged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{FlowCommand, FlowModRequest};

    fn add_req(id: u32, n: usize) -> BundleAddRequest {
        let mut op = FlowModRequest::new(FlowCommand::DeleteStrict);
        op.table = Some(9);
        BundleAddRequest {
            bundle_id: id,
            ops: vec![op.into(); n],
        }
    }

    #[test]
    fn open_add_discard_account_for_bytes() {
        let mut budget = StagingBudget::new(1 << 20, 1 << 20);
        let mut b = Bundles::default();
        b.open(7).unwrap();
        assert_eq!(b.open(7).unwrap_err().code, ErrorCode::Exists);
        assert_eq!(b.add(&add_req(7, 3), 100, &mut budget).unwrap(), 3);
        assert_eq!(b.add(&add_req(7, 2), 100, &mut budget).unwrap(), 5);
        assert_eq!(b.bytes(), 200 + 5 * OP_OVERHEAD);
        assert_eq!(budget.used(), b.bytes());
        let e = b.add(&add_req(8, 1), 10, &mut budget).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::NotFound, Some("body.bundle_id"))
        );
        b.discard(7, &mut budget).unwrap();
        assert_eq!(
            b.discard(7, &mut budget).unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!((b.bytes(), budget.used(), b.len()), (0, 0, 0));
    }

    #[test]
    fn a_full_bundle_of_small_ops_fits_the_default_session_bound() {
        // 200,000 ops of ~40 bytes of JSON each fit in the default session bound.
        let bound = crate::ServerConfig::default().max_bundle_bytes;
        assert!(
            MAX_BUNDLE_OPS * (40 + OP_OVERHEAD) < bound,
            "{OP_OVERHEAD} bytes per op"
        );
    }

    #[test]
    fn bounds_refuse_and_stage_nothing() {
        let mut budget = StagingBudget::new(10 * OP_OVERHEAD + 1000, 1 << 30);
        let mut b = Bundles::default();
        for id in 0..MAX_OPEN_BUNDLES as u32 {
            b.open(id).unwrap();
        }
        let e = b.open(99).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::Limit, Some("body.bundle_id"))
        );
        b.add(&add_req(0, 9), 100, &mut budget).unwrap();
        let e = b.add(&add_req(1, 2), 1000, &mut budget).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::Limit, Some("body.ops"))
        );
        assert_eq!(b.bytes(), 100 + 9 * OP_OVERHEAD);
        // The server-wide bound applies as well.
        let mut tight = StagingBudget::new(1 << 30, 50);
        let mut other = Bundles::default();
        other.open(1).unwrap();
        assert_eq!(
            other.add(&add_req(1, 1), 10, &mut tight).unwrap_err().code,
            ErrorCode::Limit
        );
        assert_eq!(tight.used(), 0);
    }
}
