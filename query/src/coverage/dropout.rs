//! Dropout between two doses of one antigen on the same children
//! (`GET /api/coverage/dropout`): of those who started, the share who did not complete.

use std::collections::BTreeMap;

use super::answer::{DropoutAnswer, DropoutFigures};
use super::catalogue::{DoseRule, Indicator};
use super::cohort::publication_plan;
use super::publish::{key_order, publish_planned, Context, Key, Place};
use super::question::{Breakdown, DropoutQuery};
use super::select::{before, birth_cohort_only, cohort_doses, group_key, last_birthday};
use crate::disclosure::{round4, Cell};
use crate::QueryError;

pub(super) fn dropout_answer(
    context: &Context,
    from: &Indicator,
    to: &Indicator,
    query: &DropoutQuery,
) -> Result<DropoutAnswer, QueryError> {
    birth_cohort_only(from, "dropout")?;
    birth_cohort_only(to, "dropout")?;
    let same_children = match (from.dose, to.dose) {
        (DoseRule::Nth(first), DoseRule::Nth(later)) => {
            from.antigen == to.antigen && first < later && from.sex == to.sex
        }
        _ => false,
    };
    if !same_children {
        return Err(QueryError::Invalid(format!(
            "dropout needs two doses of one antigen, the second later (e.g. DTP1 and DTP3); {} and {} are not",
            from.name, to.name
        )));
    }
    let facts = context.facts;
    let months = query.age_months.or(to.age_months).unwrap_or(12);
    let by = query.by;
    let mut started: BTreeMap<Key, u64> = BTreeMap::new();
    let mut completed: BTreeMap<Key, u64> = BTreeMap::new();
    for (indicator, counts) in [(from, &mut started), (to, &mut completed)] {
        for (group, age, persons) in cohort_doses(facts, indicator, query.cohort) {
            if age < months as i32 {
                *counts.entry(group_key(by, group)).or_default() += persons;
            }
        }
    }
    // A cell is (completed of started): the person-level dose sequence makes every child
    // with the later dose one of those with the first.
    let mut cells: BTreeMap<Key, Cell> = BTreeMap::new();
    let mut total = Cell::new(0, Some(0));
    for (key, persons) in started {
        cells.entry(key).or_default().denominator = Some(persons);
        total.denominator = Some(total.denominator.unwrap_or(0) + persons);
    }
    for (key, persons) in completed {
        cells.entry(key).or_default().numerator += persons;
        total.numerator += persons;
    }
    let mut rows: Vec<(Key, Cell)> = cells.into_iter().collect();
    rows.sort_by(|(a, _), (b, _)| key_order(a, b));

    let mut header = context.header(to);
    header.definition.age_months = Some(months);
    let incomplete = before(facts, last_birthday(query.cohort, months));
    // `started` and `completed` are the two doses' coverage numerators at this age: a row
    // is withheld wherever either dose's publication plan withholds it (else it would give
    // away the count that coverage answer withholds), and where its own counts fail the rule.
    // Either dose's withheld national count withholds the national row here too.
    let plan = publication_plan(context, from, query.cohort, months)
        .union(&publication_plan(context, to, query.cohort, months), true);
    let own: BTreeMap<Key, bool> = rows
        .iter()
        .map(|(key, cell)| (key.clone(), context.rule.fails(cell)))
        .collect();
    let (rows, total) = publish_planned(
        by.map(Breakdown::column),
        &rows,
        &total,
        &Place::cohort(query.cohort),
        |key| plan.withheld(by, key) || own.get(key).copied().unwrap_or(true),
        plan.national || context.rule.fails(&total),
        |cell, withheld| dropout_figures(cell, withheld, incomplete),
    );
    Ok(DropoutAnswer {
        header,
        from: from.name.clone(),
        to: to.name.clone(),
        cohort: query.cohort,
        by,
        rows,
        total,
    })
}

fn dropout_figures(cell: &Cell, withheld: bool, incomplete: bool) -> DropoutFigures {
    let flags = if incomplete {
        vec!["incomplete_follow_up"]
    } else {
        vec![]
    };
    if withheld {
        return DropoutFigures {
            started: None,
            completed: None,
            dropped: None,
            dropout: None,
            ci_low: None,
            ci_high: None,
            suppressed: true,
            flags,
        };
    }
    let started = cell.denominator.unwrap_or(0);
    let dropped = started.saturating_sub(cell.numerator);
    let dropped_cell = Cell::new(dropped, Some(started));
    let interval = dropped_cell.wilson();
    DropoutFigures {
        started: Some(started),
        completed: Some(cell.numerator),
        dropped: Some(dropped),
        dropout: dropped_cell.rate().map(round4),
        ci_low: interval.map(|(low, _)| round4(low)),
        ci_high: interval.map(|(_, high)| round4(high)),
        suppressed: false,
        flags,
    }
}
