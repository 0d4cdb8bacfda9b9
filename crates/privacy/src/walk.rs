//! The walk over an event: every redactable node is visited with its path in the event's
//! canonical JSON form, without allocating per node (the path lives in one buffer), so a
//! policy costs little on the gateway's hot path.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};

use crate::detect::{self, DetectorSet, Hit};
use crate::hmac::Keyed;
use crate::pointer;
use crate::policy::Method;
use crate::rules::{RuleBook, RuleSet};

/// One change the walk made, for the event's `redaction` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// RFC 6901 pointer of the node changed.
    pub pointer: String,
    /// How.
    pub method: Method,
    /// Why (a rule's category or a detector's).
    pub category: String,
}

/// What a policy needs at hand while walking one event.
pub struct Walk<'a> {
    rules: &'a RuleBook,
    detectors: DetectorSet,
    detector_methods: &'a [(detect::Detector, Method)],
    key: Option<&'a Keyed>,
    /// Reused from walk to walk (one set per thread): no allocation per event.
    buffers: &'a mut Buffers,
    forced: Option<(Method, usize)>,
    /// What changed, in walk order.
    pub changes: Vec<Change>,
}

/// The walk's working memory, kept by each thread between events.
#[derive(Default)]
pub struct Buffers {
    /// The current path: its segments one after another.
    path: String,
    /// Where each segment of `path` ends.
    ends: Vec<usize>,
    /// For each depth of the path, the rules whose segments so far all admit it: matching
    /// is incremental, one segment per step, and most fields leave no rule at depth 1.
    active: Vec<RuleSet>,
    /// Detector findings in the current text.
    hits: Vec<Hit>,
}

/// A node of the event that a walk can enter and a `drop` can empty.
pub trait Node {
    /// Visits what lies below (the node itself was not matched by a rule).
    fn walk(&mut self, cx: &mut Walk<'_>);
    /// Empties the node (`drop`).
    fn clear(&mut self);
    /// Whether there is nothing to redact (an unset field is left unset, and unrecorded).
    fn is_empty(&self) -> bool;
}

impl<'a> Walk<'a> {
    /// A walk applying `rules`, then the detectors (with their methods) to text no rule
    /// covered; `key` hashes (`None`: a `hash` method is a policy error caught earlier).
    pub fn new(
        rules: &'a RuleBook,
        detectors: DetectorSet,
        detector_methods: &'a [(detect::Detector, Method)],
        key: Option<&'a Keyed>,
        buffers: &'a mut Buffers,
    ) -> Self {
        buffers.path.clear();
        buffers.ends.clear();
        buffers.active.clear();
        buffers.active.push(rules.all());
        buffers.hits.clear();
        Self {
            rules,
            detectors,
            detector_methods,
            key,
            buffers,
            forced: None,
            changes: Vec::new(),
        }
    }

    fn segments(&self) -> Vec<&str> {
        let mut start = 0;
        self.buffers
            .ends
            .iter()
            .map(|&end| {
                let segment = &self.buffers.path[start..end];
                start = end;
                segment
            })
            .collect()
    }

    fn push(&mut self, segment: &str) {
        self.buffers.path.push_str(segment);
        self.stepped();
    }

    fn push_index(&mut self, index: usize) {
        // Decimal digits by hand: `write!` costs more than the rest of a step.
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = index;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        for &digit in &digits[at..] {
            self.buffers.path.push(char::from(digit));
        }
        self.stepped();
    }

    /// Records the segment just appended to `path` and narrows the active rules to it.
    fn stepped(&mut self) {
        let start = self.buffers.ends.last().copied().unwrap_or(0);
        let depth = self.buffers.ends.len();
        self.buffers.ends.push(self.buffers.path.len());
        let next = match self.buffers.active.last() {
            Some(&current) if !current.is_empty() => {
                current.and(self.rules.admitting(depth, &self.buffers.path[start..]))
            }
            _ => RuleSet::default(),
        };
        self.buffers.active.push(next);
    }

    fn pop(&mut self) {
        self.buffers.ends.pop();
        self.buffers.active.pop();
        self.buffers
            .path
            .truncate(self.buffers.ends.last().copied().unwrap_or(0));
    }

    fn pointer(&self) -> String {
        pointer::render(&self.segments())
    }

    /// Whether anything at or below the current path can change: a rule ahead, a rule in
    /// force, or detectors (which read every text).
    fn interesting(&self, scanned: bool) -> bool {
        self.forced.is_some()
            || (scanned && !self.detectors.is_empty())
            || self
                .buffers
                .active
                .last()
                .is_some_and(|active| !active.is_empty())
    }

    /// The first rule (in precedence order) that addresses exactly the current path.
    fn rule_here(&self) -> Option<usize> {
        if self.forced.is_some() {
            return None;
        }
        let depth = self.buffers.ends.len();
        let mut found = None;
        self.buffers.active.last()?.visit(|index| {
            if self.rules[index].pattern.len() == depth {
                found = Some(index);
            }
            found.is_none()
        });
        found
    }

    /// Visits a field that detectors read (`scanned`) or only rules address (identifiers
    /// such as `session_id`).
    pub fn field<T: Node>(&mut self, name: &str, node: &mut T, scanned: bool) {
        if node.is_empty() {
            return;
        }
        self.push(name);
        if self.interesting(scanned) && self.visit(node, scanned) {
            node.clear();
        }
        self.pop();
    }

    /// Applies the rule matching here, if any, else walks below; `true`: drop the node.
    fn visit<T: Node>(&mut self, node: &mut T, scanned: bool) -> bool {
        if node.is_empty() {
            return false;
        }
        if let Some(index) = self.rule_here() {
            let rule = &self.rules[index];
            self.changes.push(Change {
                pointer: self.pointer(),
                method: rule.method,
                category: rule.category.clone(),
            });
            if rule.method == Method::Drop {
                return true;
            }
            self.forced = Some((rule.method, index));
            node.walk(self);
            self.forced = None;
            return false;
        }
        if scanned || self.forced.is_some() {
            node.walk(self);
        } else {
            let saved = std::mem::take(&mut self.detectors);
            node.walk(self);
            self.detectors = saved;
        }
        false
    }

    /// Visits list elements (segment: the index), removing those a rule drops.
    pub fn list<T: Node>(&mut self, items: &mut Vec<T>) {
        let mut drop = Vec::new();
        for (index, item) in items.iter_mut().enumerate() {
            self.push_index(index);
            if self.interesting(true) && self.visit(item, true) {
                drop.push(index);
            }
            self.pop();
        }
        remove_indices(items, &drop);
    }

    /// A text leaf: the rule in force rewrites all of it, else detectors rewrite what
    /// they find.
    pub fn text(&mut self, text: &mut String) {
        if let Some((method, rule)) = self.forced {
            let category = &self.rules[rule].category;
            *text = self.rewrite(method, category, text);
            return;
        }
        if self.detectors.is_empty() {
            return;
        }
        detect::scan(text, self.detectors, &mut self.buffers.hits);
        if self.buffers.hits.is_empty() {
            return;
        }
        let hits = std::mem::take(&mut self.buffers.hits);
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for hit in &hits {
            let method = self.method_of(hit.detector);
            let category = hit.detector.category();
            out.push_str(&text[last..hit.start]);
            out.push_str(&self.rewrite(method, category, &text[hit.start..hit.end]));
            last = hit.end;
            self.changes.push(Change {
                pointer: self.pointer(),
                method,
                category: category.to_owned(),
            });
        }
        out.push_str(&text[last..]);
        *text = out;
        self.buffers.hits = hits;
    }

    fn method_of(&self, detector: detect::Detector) -> Method {
        self.detector_methods
            .iter()
            .find(|(d, _)| *d == detector)
            .map_or(Method::Mask, |(_, method)| *method)
    }

    fn rewrite(&self, method: Method, category: &str, value: &str) -> String {
        match method {
            Method::Mask => format!("[REDACTED:{category}]"),
            Method::Drop => String::new(),
            Method::Hash => match self.key {
                Some(key) => format!("[HMAC:{category}:{}]", key.hex(value.as_bytes())),
                None => format!("[REDACTED:{category}]"),
            },
        }
    }

    /// A non-text value under a rule in force (a number or flag inside a `Struct`) becomes
    /// the rewritten text of its JSON form; elsewhere it stays.
    fn scalar(&mut self, kind: &mut Kind) {
        let Some((method, rule)) = self.forced else {
            return;
        };
        let json = match kind {
            Kind::NumberValue(number) => number.to_string(),
            Kind::BoolValue(flag) => flag.to_string(),
            _ => return,
        };
        let category = self.rules[rule].category.clone();
        *kind = Kind::StringValue(self.rewrite(method, &category, &json));
    }
}

fn remove_indices<T>(items: &mut Vec<T>, drop: &[usize]) {
    if drop.is_empty() {
        return;
    }
    let mut index = 0;
    items.retain(|_| {
        let keep = drop.binary_search(&index).is_err();
        index += 1;
        keep
    });
}

impl Node for String {
    fn walk(&mut self, cx: &mut Walk<'_>) {
        cx.text(self);
    }
    fn clear(&mut self) {
        String::clear(self);
    }
    fn is_empty(&self) -> bool {
        String::is_empty(self)
    }
}

impl<T: Node + Default> Node for Option<T> {
    fn walk(&mut self, cx: &mut Walk<'_>) {
        if let Some(node) = self {
            node.walk(cx);
        }
    }
    fn clear(&mut self) {
        *self = None;
    }
    fn is_empty(&self) -> bool {
        self.as_ref().is_none_or(T::is_empty)
    }
}

impl<T: Node> Node for Vec<T> {
    fn walk(&mut self, cx: &mut Walk<'_>) {
        cx.list(self);
    }
    fn clear(&mut self) {
        Vec::clear(self);
    }
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
}

impl Node for Struct {
    fn walk(&mut self, cx: &mut Walk<'_>) {
        let mut drop = Vec::new();
        for (key, value) in &mut self.fields {
            cx.push(key);
            if cx.interesting(true) && cx.visit(value, true) {
                drop.push(key.clone());
            }
            cx.pop();
        }
        for key in drop {
            self.fields.remove(&key);
        }
    }
    fn clear(&mut self) {
        self.fields.clear();
    }
    fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl Node for Value {
    fn walk(&mut self, cx: &mut Walk<'_>) {
        match &mut self.kind {
            Some(Kind::StringValue(text)) => cx.text(text),
            Some(Kind::StructValue(inner)) => inner.walk(cx),
            Some(Kind::ListValue(ListValue { values })) => cx.list(values),
            Some(kind) => cx.scalar(kind),
            None => {}
        }
    }
    fn clear(&mut self) {
        self.kind = Some(Kind::NullValue(0));
    }
    fn is_empty(&self) -> bool {
        matches!(self.kind, None | Some(Kind::NullValue(_)))
    }
}
