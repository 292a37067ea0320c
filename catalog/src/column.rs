//! A column: its name, type, nullability and the role it plays, which says what every stage
//! may do with it (re-key it, generalise it, offer it to researchers, ...).

use arrow_schema::{DataType, Field, TimeUnit};

/// The kinds of identifier, each hashed under its own sub-key (domain separation). Defined
/// here, beside the columns that hold them; `vaxlake_pseudonymize` hashes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A person's normalised national number.
    Person,
    /// A vaccinator (practitioner reference or identifier).
    Practitioner,
    /// A source event: `"<source system>|<event id>"`.
    Event,
    /// A case notification: `"<case id>"`.
    Case,
    /// A FHIR resource id inside one export (never stored; used to link resources).
    Resource,
}

impl IdKind {
    /// Every kind, in declaration order (`kind as usize` indexes it).
    pub const ALL: [IdKind; 5] = [
        IdKind::Person,
        IdKind::Practitioner,
        IdKind::Event,
        IdKind::Case,
        IdKind::Resource,
    ];
}

/// The Arrow type of a column, named for what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Date,
    Int32,
    Int64,
    Float64,
    Boolean,
    /// An instant, microseconds since the epoch, in UTC.
    Instant,
}

impl ColumnType {
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::Text => DataType::Utf8,
            ColumnType::Date => DataType::Date32,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Instant => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }
}

/// How a quasi-identifier can be coarsened before it leaves (extract ladders).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generalise {
    /// A birth date kept as the first of its month: `month`, `quarter`, `year`.
    BirthMonth,
    /// A commune: `commune`, `canton`, `country`.
    Commune,
    /// A canton: `canton`, `country`.
    Canton,
    /// Kept as it is or suppressed (sex).
    Suppress,
}

/// What a column holds, and so what may be done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A pseudonym made as this kind: re-keyed by a key rotation, re-keyed to the project in
    /// an extract, never generalised.
    Identity(IdKind),
    /// Computed from pseudonyms (an unkeyed hash over them): recomputed after re-keying.
    DerivedFromIdentity,
    /// Describes the person; with the other quasi-identifiers it can single a person out,
    /// so it only leaves under k-anonymity.
    QuasiIdentifier(Generalise),
    /// The day something happened; a quasi-identifier too when it leaves.
    Date,
    /// A value analysed as it is: codes, ages, counts, flags, statuses.
    Measure,
    /// Free text as typed at the source: never offered to researchers.
    FreeText,
    /// The warehouse's bookkeeping: versions, content hashes, runs, partition values.
    Operational,
}

/// One column of a table or view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub column_type: ColumnType,
    pub nullable: bool,
    pub role: Role,
    /// Offered to researcher extracts (CONTRACTS.md, Extracts). True for identities,
    /// quasi-identifiers, dates and measures unless a column is marked [`Column::internal`].
    pub extractable: bool,
}

impl Column {
    /// A column that may not be null.
    pub const fn required(name: &'static str, column_type: ColumnType, role: Role) -> Column {
        Column {
            name,
            column_type,
            nullable: false,
            role,
            extractable: matches!(
                role,
                Role::Identity(_) | Role::QuasiIdentifier(_) | Role::Date | Role::Measure
            ),
        }
    }

    /// A column that may be null.
    pub const fn optional(name: &'static str, column_type: ColumnType, role: Role) -> Column {
        Column {
            nullable: true,
            ..Column::required(name, column_type, role)
        }
    }

    /// The same column, never offered to extracts.
    pub const fn internal(self) -> Column {
        Column {
            extractable: false,
            ..self
        }
    }

    /// The Arrow field.
    pub fn field(&self) -> Field {
        Field::new(self.name, self.column_type.data_type(), self.nullable)
    }

    /// The pseudonym kind, for identity columns.
    pub fn id_kind(&self) -> Option<IdKind> {
        match self.role {
            Role::Identity(kind) => Some(kind),
            _ => None,
        }
    }

    /// Whether the column can, with others, single a person out (birth month, sex, place,
    /// any date): such a column may only leave as a declared quasi-identifier.
    pub fn quasi_identifying(&self) -> bool {
        matches!(self.role, Role::QuasiIdentifier(_) | Role::Date)
    }
}
