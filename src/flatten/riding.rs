//! Pass 1 riding along pass 2: one walk over a row both records each
//! value's type for the day's schema and writes the row, where each pass
//! used to read every document on its own (a third of the element reads of
//! a day, the other two being pass 2's and the raw archive's).
//!
//! Pass 1's result must not depend on which way it ran. A row's recordings
//! go to a log first ([`Ridden`]), applied to its table's [`SchemaBuilder`]
//! when pass 2 walked the row once from start to end. A row that pass 2
//! walked twice (a repeated key: the second walk is over the deduplicated
//! row) is inferred again on its own, and a row pass 2 failed on (a reject)
//! is inferred on its own with the rest of its document; see
//! [`Tables::write_rows_inferring`](super::Tables::write_rows_inferring).
//! Either way the builders end exactly as [`Tables::infer`] leaves them,
//! which the tests check on the hostile documents.
//!
//! [`Tables::infer`]: super::Tables::infer

use bson::raw::RawDocument;

use super::schema::SchemaBuilder;
use super::value::Leaf;
use super::walk::Visitor;
use super::FlattenError;

/// One recording of pass 1, held until its row is known to be whole.
pub(crate) enum Recorded<'d> {
    Leaf(u32, Leaf<'d>),
    Repeated(u32, &'d RawDocument),
}

/// A row's pass-1 log, and the buffer it reuses from row to row.
#[derive(Default)]
pub(crate) struct Ridden {
    /// Always empty between rows: only its allocation is kept.
    spare: Vec<Recorded<'static>>,
}

impl Ridden {
    /// An empty log for one row, in the kept allocation.
    pub(crate) fn log<'d>(&mut self) -> Vec<Recorded<'d>> {
        // Collecting an emptied vector into one of the same layout reuses
        // its allocation; no element is ever mapped.
        std::mem::take(&mut self.spare)
            .into_iter()
            .map(|_| unreachable!("the spare log is empty"))
            .collect()
    }

    /// Gives `log` back, emptied.
    pub(crate) fn give_back(&mut self, mut log: Vec<Recorded<'_>>) {
        log.clear();
        self.spare = log
            .into_iter()
            .map(|_| unreachable!("cleared above"))
            .collect();
    }
}

/// Applies a row's log to its table's builder, in the walk's order: what
/// [`super::Flattener::infer`]'s walk does at each value. Stops at the
/// first error, as that walk does.
pub(crate) fn apply<'d>(
    log: &mut Vec<Recorded<'d>>,
    schema: &mut SchemaBuilder,
) -> Result<(), FlattenError> {
    for recorded in log.drain(..) {
        match recorded {
            Recorded::Leaf(node, leaf) => Visitor::<'d>::leaf(schema, node, leaf)?,
            Recorded::Repeated(node, array) => schema.repeated(node, array)?,
        }
    }
    Ok(())
}

/// Pass 2's visitor with pass 1's beside it: the rows are written as pass 2
/// alone writes them, and each value pass 2 took is logged for pass 1.
pub(crate) struct Both<'r, 'd, V> {
    pub(crate) rows: V,
    pub(crate) schema: &'r mut SchemaBuilder,
    pub(crate) log: &'r mut Vec<Recorded<'d>>,
}

impl<'d, V> Visitor<'d> for Both<'_, 'd, V>
where
    V: Visitor<'d, Node = u32, Guess = usize>,
{
    /// (pass 1's node, pass 2's node): each pass keeps its own trie.
    type Node = (u32, u32);
    type Guess = (usize, usize);

    #[inline]
    fn enter(&mut self, parent: (u32, u32), key: &str, guess: &mut (usize, usize)) -> (u32, u32) {
        (
            self.schema.enter(parent.0, key, &mut guess.0),
            self.rows.enter(parent.1, key, &mut guess.1),
        )
    }

    #[inline]
    fn leaf(&mut self, node: (u32, u32), leaf: Leaf<'d>) -> Result<(), FlattenError> {
        self.rows.leaf(node.1, leaf)?;
        self.log.push(Recorded::Leaf(node.0, leaf));
        Ok(())
    }

    #[inline(never)]
    fn repeated(&mut self, node: (u32, u32), array: &'d RawDocument) -> Result<(), FlattenError> {
        self.rows.repeated(node.1, array)?;
        self.log.push(Recorded::Repeated(node.0, array));
        Ok(())
    }
}
