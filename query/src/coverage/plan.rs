//! The publication plan of one indicator, cohort and age: which cells of the whole
//! publication (national, cantons, communes, sexes; or national and age bands) are withheld.
//! Every coverage answer about that indicator and cohort reads it, whatever its breakdown,
//! and dropout and timeliness answers withhold at least what it withholds, so that all
//! answers taken together are protected as one table (docs/coverage.md, "Disclosure
//! control").
//!
//! The rule: primary suppression ([`Suppression::fails`]), then complementary suppression
//! until every withheld cell can move, up and down, by at least the threshold (or its whole
//! denominator, when that is smaller) without changing any published cell. A move is proved
//! by flows along withheld cells between leaves of the hierarchy whose lowest common
//! ancestor is the only published cell on each path: the cells on one side gain what those
//! on the other side lose, so every published sum stays put. A move may be shared among
//! several withheld siblings (each within its own room), so small cells protect each other
//! together; counting only the single best sibling withheld whole cantons of small communes
//! for nothing. Each such move is a point of the
//! auditor's linear programme, so the range the auditor finds is at least as wide as the
//! moves found here (tests/disclosure_audit.rs checks it with an LP solver).
//!
//! Denominators are treated as public (they come from published population statistics and
//! from other indicators' rows of the same cohort); only numerators are protected.

use std::collections::BTreeMap;

use super::facts::Facts;
use super::publish::Key;
use super::question::Breakdown;
use crate::disclosure::{Cell, Suppression};

/// No upper bound: a cell without a population denominator (persons without a commune).
const UNBOUNDED: i64 = i64::MAX / 4;

/// One cell of the hierarchy as the plan sees it.
#[derive(Debug, Clone)]
struct Node {
    key: Key,
    numerator: i64,
    /// The largest numerator an auditor could assume: the denominator, unbounded without
    /// one. A numerator above its denominator (a population estimate below the persons
    /// counted) stays above it: the auditor's range then ends below the truth, and the
    /// negative room of [`Node::up`] says so.
    cap: i64,
    /// The smallest numerator an auditor could assume: 0, or the low end of a published band.
    low: i64,
    /// The auditor's upper bound before any band: the denominator, unbounded without one.
    limit: i64,
    /// Public: the denominator, or 0 without one.
    denominator: u64,
    hidden: bool,
    /// The published band of a withheld cell, as grid indices (see [`super::bands`]).
    band: Option<(usize, usize)>,
    /// The position in the complement order (public denominators, then a keyed hash).
    order: (bool, [u8; 32]),
}

impl Node {
    fn new(key: Key, cell: &Cell, order_key: &[u8; 32]) -> Node {
        let cap = match cell.denominator {
            Some(denominator) => count(denominator),
            None => UNBOUNDED,
        };
        let order =
            *blake3::keyed_hash(order_key, key.as_deref().unwrap_or("\u{0}none").as_bytes())
                .as_bytes();
        Node {
            key,
            numerator: count(cell.numerator),
            cap,
            low: 0,
            limit: cap,
            denominator: cell.denominator.unwrap_or(0),
            hidden: false,
            band: None,
            order: (false, order),
        }
    }

    /// How far the auditor's largest value lies above the truth (negative when the count
    /// exceeds its denominator). Signed so that sums over siblings net such cells out.
    fn up(&self) -> i64 {
        self.cap - self.numerator
    }

    fn down(&self) -> i64 {
        self.numerator - self.low
    }

    /// The width a withheld cell's range must reach: the threshold, or the whole range of a
    /// cell smaller than it.
    fn need(&self, threshold: u64) -> i64 {
        count(threshold).min(self.limit.max(0))
    }

    /// Publishes `band` (grid indices) for this withheld cell, or none: the auditor's bounds
    /// become the band's whole counts.
    fn set_band(&mut self, band: Option<(usize, usize)>) {
        self.band = band;
        let (low, high) = match band {
            Some(band) => super::bands::counts(self.denominator, band),
            None => (0, u64::MAX),
        };
        self.low = count(low).min(self.numerator);
        self.cap = self.limit.min(count(high));
    }
}

/// A sum that stays at the unbounded mark instead of overflowing.
fn total(values: impl Iterator<Item = i64>) -> i64 {
    values.fold(0, |sum: i64, value| {
        sum.saturating_add(value).min(UNBOUNDED)
    })
}

/// A count as the plan's signed arithmetic holds it.
fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(UNBOUNDED).min(UNBOUNDED)
}

/// The width of a withheld cell's range: as far up as the others can give way (`via_down`)
/// and its own room allow, plus as far down as the others can absorb (`via_up`, never below
/// nothing) and its count allow.
fn width(node_up: i64, node_down: i64, via_down: i64, via_up: i64) -> i64 {
    node_up.min(via_down) + node_down.min(via_up.max(0))
}

/// Which cells of one publication are withheld.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Plan {
    pub national: bool,
    pub cantons: BTreeMap<Key, bool>,
    pub communes: BTreeMap<Key, bool>,
    pub sexes: BTreeMap<Key, bool>,
    /// Age bands (age-band indicators) or any other flat breakdown.
    pub bands: BTreeMap<Key, bool>,
}

impl Plan {
    /// Whether the row `key` of an answer broken down `by` is withheld; `None` is the
    /// national row.
    pub fn withheld(&self, by: Option<Breakdown>, key: &Key) -> bool {
        let map = match by {
            None => return self.national,
            Some(Breakdown::Commune) => &self.communes,
            Some(Breakdown::Canton) => &self.cantons,
            Some(Breakdown::Sex) => &self.sexes,
        };
        self.national || map.get(key).copied().unwrap_or(true)
    }

    /// Whether the age band `key` is withheld.
    pub fn band_withheld(&self, key: &Key) -> bool {
        self.national || self.bands.get(key).copied().unwrap_or(true)
    }

    /// Withholds, in addition, every row `other` withholds (all of them when `other`
    /// withholds its national cell); with `national`, also the national cell when `other`
    /// withholds it. A linked dose's withheld national cell need not withhold this one's:
    /// a published national DTP3 of N − k (k ≥ threshold) leaves a withheld national DTP1
    /// anywhere in N − k..N.
    pub fn union(&self, other: &Plan, national: bool) -> Plan {
        let merge = |a: &BTreeMap<Key, bool>, b: &BTreeMap<Key, bool>| {
            let mut merged = a.clone();
            for (key, hidden) in b {
                *merged.entry(key.clone()).or_default() |= *hidden || other.national;
            }
            for hidden in merged.values_mut() {
                *hidden |= other.national;
            }
            merged
        };
        Plan {
            national: self.national || (national && other.national),
            cantons: merge(&self.cantons, &other.cantons),
            communes: merge(&self.communes, &other.communes),
            sexes: merge(&self.sexes, &other.sexes),
            bands: merge(&self.bands, &other.bands),
        }
    }
}

/// The cells of one publication: counts per facts group, which every breakdown sums.
#[derive(Debug, Clone, Default)]
pub(super) struct Selection {
    pub numerators: Vec<(u32, u64)>,
    pub denominators: Vec<(u32, u64)>,
}

impl Selection {
    /// Rows keyed by `by` (or the total alone) and the total, as [`super::publish::tabulate`]
    /// sums them.
    pub fn tabulate(&self, facts: &Facts, by: Option<Breakdown>) -> (Vec<(Key, Cell)>, Cell) {
        let key = |group: u32| by.and_then(|by| by.key(&facts.groups[group as usize]));
        super::publish::tabulate(
            self.numerators
                .iter()
                .map(|(group, persons)| (key(*group), *persons)),
            self.denominators
                .iter()
                .map(|(group, persons)| (key(*group), *persons)),
        )
    }

    /// The plan of the geographic and sex hierarchy of this selection.
    pub fn plan(&self, facts: &Facts, rule: Suppression, order_key: &[u8; 32]) -> Plan {
        self.hierarchy(facts, rule, order_key).solve()
    }

    /// The hierarchy of this selection with its primary suppressions, before complements.
    pub fn hierarchy(&self, facts: &Facts, rule: Suppression, order_key: &[u8; 32]) -> Hierarchy {
        let (_, national) = self.tabulate(facts, None);
        let (cantons, _) = self.tabulate(facts, Some(Breakdown::Canton));
        let (communes, _) = self.tabulate(facts, Some(Breakdown::Commune));
        let (sexes, _) = self.tabulate(facts, Some(Breakdown::Sex));
        let parents = self.parents(facts, &communes);
        Hierarchy::new(
            rule, order_key, &national, &cantons, &communes, &parents, &sexes,
        )
    }

    /// The canton of each of `communes`: the one its persons (or population rows) carry
    /// first.
    pub fn parents(&self, facts: &Facts, communes: &[(Key, Cell)]) -> Vec<Key> {
        let mut canton_of: BTreeMap<Key, Key> = BTreeMap::new();
        for (group, _) in self.numerators.iter().chain(&self.denominators) {
            let group = &facts.groups[*group as usize];
            canton_of
                .entry(group.commune.clone())
                .or_insert_with(|| group.canton.clone());
        }
        communes
            .iter()
            .map(|(commune, _)| canton_of.get(commune).cloned().flatten())
            .collect()
    }
}

/// Plans a flat table: a total and rows that add up to it (age bands).
pub(super) fn flat_plan(
    rule: Suppression,
    order_key: &[u8; 32],
    rows: &[(Key, Cell)],
    total: &Cell,
) -> Plan {
    let mut hierarchy = Hierarchy::new(rule, order_key, total, &[], &[], &[], rows);
    hierarchy.complete();
    let mut plan = hierarchy.plan();
    plan.bands = std::mem::take(&mut plan.sexes);
    plan
}

/// National → cantons → communes, and national → sexes.
pub(super) struct Hierarchy {
    threshold: u64,
    national: Node,
    cantons: Vec<Node>,
    communes: Vec<Node>,
    /// The canton (index into `cantons`) of each commune.
    canton_of: Vec<usize>,
    sexes: Vec<Node>,
}

impl Hierarchy {
    fn new(
        rule: Suppression,
        order_key: &[u8; 32],
        national: &Cell,
        cantons: &[(Key, Cell)],
        communes: &[(Key, Cell)],
        parents: &[Key],
        sexes: &[(Key, Cell)],
    ) -> Hierarchy {
        let nodes = |cells: &[(Key, Cell)]| -> Vec<Node> {
            cells
                .iter()
                .map(|(key, cell)| {
                    let mut node = Node::new(key.clone(), cell, order_key);
                    node.hidden = rule.fails(cell);
                    // Complements are taken among cells at least as large as the threshold
                    // first: whether a cell is that large is public.
                    node.order.0 = node.denominator < rule.threshold;
                    node
                })
                .collect()
        };
        let mut cantons = nodes(cantons);
        let canton_of = parents
            .iter()
            .map(|parent| {
                cantons
                    .iter()
                    .position(|canton| &canton.key == parent)
                    .unwrap_or_else(|| {
                        // A commune whose canton has no cell of its own (no persons and no
                        // population there): an empty canton node keeps the tree whole.
                        cantons.push(Node::new(parent.clone(), &Cell::new(0, Some(0)), order_key));
                        cantons.len() - 1
                    })
            })
            .collect();
        let mut national_node = Node::new(None, national, order_key);
        national_node.hidden = rule.fails(national);
        Hierarchy {
            threshold: rule.threshold,
            national: national_node,
            cantons,
            communes: nodes(communes),
            canton_of,
            sexes: nodes(sexes),
        }
    }

    pub fn solve(mut self) -> Plan {
        self.complete();
        self.plan()
    }

    /// Withholds the cell `key` of the breakdown `by` (the national cell for `None`), e.g.
    /// because another publication makes it unsafe to publish; [`Hierarchy::complete`] then
    /// protects it like a primary one. Whether it was published before.
    pub fn force(&mut self, by: Option<Breakdown>, key: &Key) -> bool {
        let node = match by {
            None => Some(&mut self.national),
            Some(Breakdown::Canton) => self.cantons.iter_mut().find(|node| &node.key == key),
            Some(Breakdown::Commune) => self.communes.iter_mut().find(|node| &node.key == key),
            Some(Breakdown::Sex) => self.sexes.iter_mut().find(|node| &node.key == key),
        };
        match node {
            Some(node) if !node.hidden => {
                node.hidden = true;
                true
            }
            _ => false,
        }
    }

    /// The canton `key` of the commune `commune`, if the hierarchy knows it.
    pub fn canton_of(&self, commune: &Key) -> Option<Key> {
        let index = self.communes.iter().position(|node| &node.key == commune)?;
        Some(self.cantons[self.canton_of[index]].key.clone())
    }

    /// The next cell to withhold beside `key` of the breakdown `by`, in the complement order:
    /// a published sibling (a commune of the same canton, another canton, another sex), or
    /// none when all are withheld.
    pub fn next_sibling(&self, by: Option<Breakdown>, key: &Key) -> Option<Key> {
        match by {
            None => None,
            Some(Breakdown::Canton) => Self::next(&self.cantons, 0..self.cantons.len())
                .map(|i| self.cantons[i].key.clone()),
            Some(Breakdown::Sex) => {
                Self::next(&self.sexes, 0..self.sexes.len()).map(|i| self.sexes[i].key.clone())
            }
            Some(Breakdown::Commune) => {
                let index = self.communes.iter().position(|node| &node.key == key)?;
                let canton = self.canton_of[index];
                let inside = (0..self.communes.len()).filter(|&c| self.canton_of[c] == canton);
                Self::next(&self.communes, inside).map(|i| self.communes[i].key.clone())
            }
        }
    }

    pub fn plan(&self) -> Plan {
        let map = |nodes: &[Node]| -> BTreeMap<Key, bool> {
            nodes
                .iter()
                .map(|node| (node.key.clone(), node.hidden || self.national.hidden))
                .collect()
        };
        Plan {
            national: self.national.hidden,
            cantons: map(&self.cantons),
            communes: map(&self.communes),
            sexes: map(&self.sexes),
            bands: BTreeMap::new(),
        }
    }

    /// Adds complements until every withheld cell is protected. A withheld national total
    /// withholds everything: nothing published could then be subtracted from anything.
    pub fn complete(&mut self) {
        if self.national.hidden {
            return;
        }
        loop {
            let changed = self.protect_sexes() || self.protect_cantons() || self.protect_communes();
            if !changed {
                break;
            }
        }
    }

    /// The next cell to withhold among `candidates` (indices into `nodes`): the first in the
    /// public-then-keyed order, so that the choice says nothing about withheld values.
    fn next(nodes: &[Node], candidates: impl Iterator<Item = usize>) -> Option<usize> {
        candidates
            .filter(|&index| !nodes[index].hidden)
            .min_by(|&a, &b| nodes[a].order.cmp(&nodes[b].order))
    }

    /// Sexes (or age bands) are one level under the national total: a withheld one needs
    /// withheld siblings with room, together, to trade with.
    fn sex_width(&self, index: usize) -> i64 {
        let node = &self.sexes[index];
        let others = || {
            self.sexes
                .iter()
                .enumerate()
                .filter(move |(other, sibling)| *other != index && sibling.hidden)
                .map(|(_, sibling)| sibling)
        };
        width(
            node.up(),
            node.down(),
            total(others().map(Node::down)),
            total(others().map(Node::up)),
        )
    }

    fn protect_sexes(&mut self) -> bool {
        let threshold = self.threshold;
        for index in 0..self.sexes.len() {
            if !self.sexes[index].hidden
                || self.sex_width(index) >= self.sexes[index].need(threshold)
            {
                continue;
            }
            if let Some(next) = Self::next(&self.sexes, 0..self.sexes.len()) {
                self.sexes[next].hidden = true;
                return true;
            }
        }
        false
    }

    /// Every withheld canton's room through its withheld communes, a move shared among them
    /// (0 for published ones).
    fn canton_rooms(&self) -> Vec<(i64, i64)> {
        let mut best = vec![(0i64, 0i64); self.cantons.len()];
        for (commune, &canton) in self.communes.iter().zip(&self.canton_of) {
            if commune.hidden {
                best[canton] = (
                    best[canton].0.saturating_add(commune.up()).min(UNBOUNDED),
                    best[canton].1.saturating_add(commune.down()).min(UNBOUNDED),
                );
            }
        }
        best.iter()
            .zip(&self.cantons)
            .map(|(&(up, down), node)| {
                if node.hidden {
                    (node.up().min(up), node.down().min(down))
                } else {
                    (0, 0)
                }
            })
            .collect()
    }

    /// The room of the other withheld cantons than `canton` together (up, down), from
    /// `rooms`.
    fn other_room(rooms: &[(i64, i64)], canton: usize) -> (i64, i64) {
        rooms
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != canton)
            .fold((0, 0), |(all_up, all_down), (_, &(up, down))| {
                (
                    all_up.saturating_add(up).min(UNBOUNDED),
                    all_down.saturating_add(down).min(UNBOUNDED),
                )
            })
    }

    /// The range width of withheld canton `canton`: its communes' room, traded with the
    /// other withheld cantons' (`rooms`).
    fn canton_width(&self, canton: usize, rooms: &[(i64, i64)]) -> i64 {
        let (own_up, own_down) = rooms[canton];
        let (other_up, other_down) = Self::other_room(rooms, canton);
        width(own_up, own_down, other_down, other_up)
    }

    fn protect_cantons(&mut self) -> bool {
        let threshold = self.threshold;
        let rooms = self.canton_rooms();
        for canton in 0..self.cantons.len() {
            if !self.cantons[canton].hidden {
                continue;
            }
            let (own_up, own_down) = rooms[canton];
            let need = self.cantons[canton].need(threshold);
            if self.canton_width(canton, &rooms) >= need {
                continue;
            }
            // Room inside the canton first (a withheld canton whose communes are all
            // published is their sum), then another canton to trade with.
            if own_up.saturating_add(own_down) < need {
                let inside = (0..self.communes.len()).filter(|&c| self.canton_of[c] == canton);
                if let Some(next) = Self::next(&self.communes, inside) {
                    self.communes[next].hidden = true;
                    return true;
                }
            }
            if let Some(next) = Self::next(&self.cantons, 0..self.cantons.len()) {
                self.cantons[next].hidden = true;
                return true;
            }
            // Every canton is withheld: the other cantons need withheld communes.
            // (All withheld, so `rooms` holds each one's room.)
            for (other, &(up, down)) in rooms.iter().enumerate() {
                if other != canton && up.saturating_add(down) < need {
                    let inside = (0..self.communes.len()).filter(|&c| self.canton_of[c] == other);
                    if let Some(next) = Self::next(&self.communes, inside) {
                        self.communes[next].hidden = true;
                        return true;
                    }
                }
            }
        }
        false
    }

    /// The communes of each canton.
    fn members(&self) -> Vec<Vec<usize>> {
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); self.cantons.len()];
        for (commune, &canton) in self.canton_of.iter().enumerate() {
            members[canton].push(commune);
        }
        members
    }

    /// The range width of withheld commune `commune`: the withheld siblings give way to part
    /// of a move and, through a withheld canton, the other withheld cantons to the rest.
    fn commune_width(&self, commune: usize, rooms: &[(i64, i64)], members: &[Vec<usize>]) -> i64 {
        let canton = self.canton_of[commune];
        let node = &self.communes[commune];
        let nodes = &self.communes;
        let siblings = || {
            members[canton]
                .iter()
                .filter(move |&&other| other != commune && nodes[other].hidden)
                .map(move |&other| &nodes[other])
        };
        let mut give_down = total(siblings().map(Node::down));
        let mut give_up = total(siblings().map(Node::up));
        let parent = &self.cantons[canton];
        if parent.hidden {
            let (other_up, other_down) = Self::other_room(rooms, canton);
            give_down = give_down.saturating_add(parent.up().min(other_down).max(0));
            give_up = give_up.saturating_add(parent.down().min(other_up).max(0));
        }
        width(node.up(), node.down(), give_down, give_up)
    }

    fn protect_communes(&mut self) -> bool {
        let threshold = self.threshold;
        let rooms = self.canton_rooms();
        let members = self.members();
        for commune in 0..self.communes.len() {
            if !self.communes[commune].hidden
                || self.commune_width(commune, &rooms, &members)
                    >= self.communes[commune].need(threshold)
            {
                continue;
            }
            let canton = self.canton_of[commune];
            if let Some(next) = Self::next(&self.communes, members[canton].iter().copied()) {
                self.communes[next].hidden = true;
                return true;
            }
            if !self.cantons[canton].hidden {
                self.cantons[canton].hidden = true;
                return true;
            }
        }
        false
    }

    /// Withholds, besides its own, every cell `plan` withholds (a plan joined with linked
    /// doses' plans), so that bands are checked against what is really published.
    pub fn impose(&mut self, plan: &Plan) {
        self.national.hidden |= plan.national;
        for (nodes, map) in [
            (&mut self.cantons, &plan.cantons),
            (&mut self.communes, &plan.communes),
            (&mut self.sexes, &plan.sexes),
        ] {
            for node in nodes.iter_mut() {
                node.hidden |= plan.national || map.get(&node.key).copied().unwrap_or(true);
            }
        }
    }

    /// The withheld cells whose range is narrower than they need, each as its breakdown and
    /// key (the check of [`Hierarchy::complete`] without adding complements).
    fn unprotected(&self) -> Vec<(Breakdown, usize)> {
        let threshold = self.threshold;
        let rooms = self.canton_rooms();
        let members = self.members();
        let mut short = Vec::new();
        for index in 0..self.sexes.len() {
            let node = &self.sexes[index];
            if node.hidden && self.sex_width(index) < node.need(threshold) {
                short.push((Breakdown::Sex, index));
            }
        }
        for canton in 0..self.cantons.len() {
            let node = &self.cantons[canton];
            if node.hidden && self.canton_width(canton, &rooms) < node.need(threshold) {
                short.push((Breakdown::Canton, canton));
            }
        }
        for commune in 0..self.communes.len() {
            let node = &self.communes[commune];
            if node.hidden && self.commune_width(commune, &rooms, &members) < node.need(threshold) {
                short.push((Breakdown::Commune, commune));
            }
        }
        short
    }

    fn nodes_mut(&mut self, by: Breakdown) -> &mut Vec<Node> {
        match by {
            Breakdown::Sex => &mut self.sexes,
            Breakdown::Canton => &mut self.cantons,
            Breakdown::Commune => &mut self.communes,
        }
    }

    /// Bands for the withheld cells (docs/coverage.md, "Bands"): each starts as the band of
    /// the public grid holding its coverage, widened until it spans what the cell needs (a
    /// choice made from the band and the public denominator alone); then, while
    /// some withheld cell's range falls short with the bands published, the bands of it and
    /// of the withheld cells it trades with widen one step (a band of 0-100 % is none).
    /// None when the national cell is withheld: nothing is published to band against.
    pub fn bands(&mut self) -> BTreeMap<(Breakdown, Key), (f64, f64)> {
        if self.national.hidden {
            return BTreeMap::new();
        }
        let threshold = self.threshold;
        // Cells short before any band (withheld only because a linked dose withholds them)
        // are not the bands' doing; they are left out of the check.
        let already: Vec<(Breakdown, usize)> = self.unprotected();
        for by in [Breakdown::Sex, Breakdown::Canton, Breakdown::Commune] {
            for node in self.nodes_mut(by).iter_mut().filter(|node| node.hidden) {
                let need = node.need(threshold);
                let band = super::bands::initial(node.numerator, node.denominator, need);
                node.set_band(band);
            }
        }
        let short_now = |hierarchy: &Hierarchy| -> Vec<(Breakdown, usize)> {
            let mut short = hierarchy.unprotected();
            short.retain(|cell| !already.contains(cell));
            short
        };
        for _ in 0..super::bands::MAX_WIDENINGS {
            let short = short_now(self);
            if short.is_empty() {
                break;
            }
            let members = self.members();
            let mut widen: Vec<(Breakdown, usize)> = Vec::new();
            for (by, index) in short {
                match by {
                    // A commune trades with its canton's communes (and, through the canton,
                    // with every other canton's).
                    Breakdown::Commune => {
                        let canton = self.canton_of[index];
                        widen.extend(members[canton].iter().map(|&c| (by, c)));
                        widen.extend((0..self.cantons.len()).map(|c| (Breakdown::Canton, c)));
                    }
                    Breakdown::Canton => {
                        widen.extend((0..self.cantons.len()).map(|c| (by, c)));
                        let inside =
                            (0..self.communes.len()).filter(|&c| self.canton_of[c] == index);
                        widen.extend(inside.map(|c| (Breakdown::Commune, c)).collect::<Vec<_>>());
                    }
                    Breakdown::Sex => widen.extend((0..self.sexes.len()).map(|c| (by, c))),
                }
            }
            widen.sort_unstable_by_key(|(by, index)| (*by, *index));
            widen.dedup();
            for (by, index) in widen {
                let node = &mut self.nodes_mut(by)[index];
                if node.hidden {
                    let wider = node.band.and_then(super::bands::wider);
                    node.set_band(wider);
                }
            }
        }
        if !short_now(self).is_empty() {
            // The widening ran out of steps: no band at all.
            for by in [Breakdown::Sex, Breakdown::Canton, Breakdown::Commune] {
                self.nodes_mut(by)
                    .iter_mut()
                    .for_each(|node| node.set_band(None));
            }
        }
        let mut bands = BTreeMap::new();
        for by in [Breakdown::Sex, Breakdown::Canton, Breakdown::Commune] {
            for node in self.nodes_mut(by).iter() {
                if let (true, Some(band)) = (node.hidden, node.band) {
                    bands.insert((by, node.key.clone()), super::bands::shares(band));
                }
            }
        }
        bands
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(numerator: u64, denominator: u64) -> Cell {
        Cell::new(numerator, Some(denominator))
    }

    fn named(name: &str, numerator: u64, denominator: u64) -> (Key, Cell) {
        (Some(name.to_string()), cell(numerator, denominator))
    }

    const KEY: [u8; 32] = [7; 32];

    fn solve(
        national: Cell,
        cantons: &[(Key, Cell)],
        communes: &[(Key, Cell)],
        parents: &[&str],
        sexes: &[(Key, Cell)],
    ) -> Plan {
        let parents: Vec<Key> = parents.iter().map(|p| Some(p.to_string())).collect();
        Hierarchy::new(
            Suppression::default(),
            &KEY,
            &national,
            cantons,
            communes,
            &parents,
            sexes,
        )
        .solve()
    }

    fn hidden(map: &BTreeMap<Key, bool>, name: &str) -> bool {
        map[&Some(name.to_string())]
    }

    #[test]
    fn a_canton_with_one_withheld_commune_withholds_a_second_one() {
        // Canton A: a1 60/62 (2 unvaccinated: primary), a2 50/60, a3 40/45. Canton B:
        // b1 100/110. Alone, a1 = A − a2 − a3; so a sibling goes too. a2 gives a1 room
        // up min(2, 50) = 2 and down min(60, 10) = 10: 12 ≥ 8. a3 gives up min(2, 40) = 2,
        // down min(60, 5) = 5: 7 < 8, so a3 alone would not do; whichever comes first in
        // the keyed order, the loop stops only once a1 has room 8.
        let communes = [
            named("a1", 60, 62),
            named("a2", 50, 60),
            named("a3", 40, 45),
            named("b1", 100, 110),
        ];
        let cantons = [named("A", 150, 167), named("B", 100, 110)];
        let plan = solve(
            cell(250, 277),
            &cantons,
            &communes,
            &["A", "A", "A", "B"],
            &[named("f", 120, 130), named("m", 130, 147)],
        );
        assert!(hidden(&plan.communes, "a1"));
        assert!(hidden(&plan.communes, "a2"), "{plan:?}");
        assert!(!hidden(&plan.communes, "b1"));
        assert!(!hidden(&plan.cantons, "A") && !hidden(&plan.cantons, "B"));
        assert!(!plan.national);
    }

    #[test]
    fn a_single_commune_canton_is_protected_through_another_canton() {
        // Canton T holds one commune t1 (5 of 6: primary, denominator 6 < 8, so its range
        // must be the whole 0..6). Its canton is the same cell: both go, and another
        // canton with a withheld commune must trade with it. Canton U: u1 40/50, u2 45/50.
        let communes = [named("t1", 5, 6), named("u1", 40, 50), named("u2", 45, 50)];
        let cantons = [named("T", 5, 6), named("U", 85, 100)];
        let plan = solve(
            cell(90, 106),
            &cantons,
            &communes,
            &["T", "U", "U"],
            &[named("f", 45, 53), named("m", 45, 53)],
        );
        assert!(hidden(&plan.communes, "t1"));
        assert!(hidden(&plan.cantons, "T"));
        assert!(hidden(&plan.cantons, "U"));
        // One commune of U trades with t1: up to 1 more for t1 (6 − 5) against 1 fewer in
        // it, and 5 fewer for t1 against 5 more in it (u1 has 10 unvaccinated, u2 5).
        assert!(hidden(&plan.communes, "u1") || hidden(&plan.communes, "u2"));
        assert!(!hidden(&plan.sexes, "f") && !hidden(&plan.sexes, "m"));
    }

    /// Canton A: a1 60/62 (2 unvaccinated: primary), a2 50/60, a3 48/60; canton B: b1
    /// 100/110. Either sibling alone gives a1 room enough: a2 up min(2, 50) + down
    /// min(60, 10) = 12, a3 2 + 12 = 14, both ≥ 8 (and a1 gives the complement room back:
    /// a2 10 + 2, a3 12 + 2). Both have denominators ≥ 8, so only the keyed hash of their
    /// names decides which one goes: the one whose hash under the order key is smaller.
    fn two_candidates(order_key: &[u8; 32]) -> (bool, bool) {
        let communes = [
            named("a1", 60, 62),
            named("a2", 50, 60),
            named("a3", 48, 60),
            named("b1", 100, 110),
        ];
        let parents: Vec<Key> = ["A", "A", "A", "B"]
            .iter()
            .map(|p| Some(p.to_string()))
            .collect();
        let plan = Hierarchy::new(
            Suppression::default(),
            order_key,
            &cell(258, 292),
            &[named("A", 158, 182), named("B", 100, 110)],
            &communes,
            &parents,
            &[named("f", 130, 146), named("m", 128, 146)],
        )
        .solve();
        assert!(hidden(&plan.communes, "a1"));
        assert!(!hidden(&plan.communes, "b1") && !plan.national, "{plan:?}");
        let (a2, a3) = (hidden(&plan.communes, "a2"), hidden(&plan.communes, "a3"));
        assert!(a2 != a3, "exactly one complement: {plan:?}");
        (a2, a3)
    }

    /// Which of a2 and a3 the order `order_key` takes first, computed here from the
    /// definition (a BLAKE3 keyed hash of the commune's name, smaller first).
    fn expected_first(order_key: &[u8; 32]) -> &'static str {
        let hash = |name: &str| *blake3::keyed_hash(order_key, name.as_bytes()).as_bytes();
        if hash("a2") < hash("a3") {
            "a2"
        } else {
            "a3"
        }
    }

    #[test]
    fn the_order_key_and_nothing_else_picks_between_equal_complements() {
        // The public order (an empty secret, what a warehouse without a secret uses) and
        // the first secret [s; 32] whose order disagrees with it: the key decides.
        let context = "vaxlake 2026-12 coverage complementary suppression order";
        let public = blake3::derive_key(context, b"");
        let keyed = (1..=u8::MAX)
            .map(|s| blake3::derive_key(context, &[s; 32]))
            .find(|key| expected_first(key) != expected_first(&public))
            .expect("some secret orders a2 and a3 the other way");
        for key in [public, keyed] {
            let (a2, _) = two_candidates(&key);
            assert_eq!(a2, expected_first(&key) == "a2");
        }
        assert_ne!(two_candidates(&public), two_candidates(&keyed));
        // The same key always gives the same plan.
        assert_eq!(two_candidates(&keyed), two_candidates(&keyed));
    }

    #[test]
    fn a_withheld_national_total_withholds_everything() {
        let plan = solve(
            cell(3, 73),
            &[named("A", 3, 73)],
            &[named("a1", 3, 20), named("a2", 0, 53)],
            &["A", "A"],
            &[named("f", 0, 20), named("m", 3, 53)],
        );
        assert!(plan.national);
        assert!(plan.withheld(Some(Breakdown::Commune), &Some("a2".into())));
        assert!(plan.withheld(Some(Breakdown::Sex), &Some("f".into())));
    }
}
