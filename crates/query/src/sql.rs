//! SQL text with bound values: every value a caller supplies travels as a bound argument
//! (escaped by the client library), never spliced into the text.

use crate::QueryError;

/// One bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string.
    Text(String),
    /// An integer.
    Int(i64),
}

/// A statement under construction.
#[derive(Debug, Default, Clone)]
pub struct Sql {
    text: String,
    values: Vec<Value>,
}

impl Sql {
    /// Starts with fixed text.
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            values: Vec::new(),
        }
    }

    /// Appends fixed text (never caller input).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to a string.
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.text.push('?');
        self.values.push(Value::Text(value.to_owned()));
        self
    }

    /// Appends a placeholder bound to an integer.
    pub fn int(&mut self, value: i64) -> &mut Self {
        self.text.push('?');
        self.values.push(Value::Int(value));
        self
    }

    /// Appends `?, ?, ...` bound to strings.
    pub fn texts<'a>(&mut self, values: impl IntoIterator<Item = &'a String>) -> &mut Self {
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.text.push_str(", ");
            }
            self.text(value);
        }
        self
    }

    /// Appends `?, ?, ...` bound to integers.
    pub fn ints(&mut self, values: impl IntoIterator<Item = i64>) -> &mut Self {
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.text.push_str(", ");
            }
            self.int(value);
        }
        self
    }

    /// Appends another statement's text and values (for subqueries).
    pub fn append(&mut self, other: &Sql) -> &mut Self {
        self.text.push_str(&other.text);
        self.values.extend(other.values.iter().cloned());
        self
    }

    /// The text, for logs and errors.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A query on `client` with every value bound in order.
    pub fn query(&self, client: &clickhouse::Client) -> clickhouse::query::Query {
        let mut query = client.query(&self.text);
        for value in &self.values {
            query = match value {
                Value::Text(text) => query.bind(text.as_str()),
                Value::Int(number) => query.bind(*number),
            };
        }
        query
    }

    /// Every row of the statement on `client`; a failure is a store error naming the text.
    pub async fn fetch_all<T>(&self, client: &clickhouse::Client) -> Result<Vec<T>, QueryError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        self.query(client)
            .fetch_all()
            .await
            .map_err(|source| QueryError::store(self.as_str(), source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_placeholders_in_order() {
        let mut sql = Sql::new("SELECT 1 WHERE a = ");
        sql.text("x'; DROP TABLE events; --")
            .push(" AND b IN (")
            .ints([1, 2])
            .push(")");
        assert_eq!(sql.as_str(), "SELECT 1 WHERE a = ? AND b IN (?, ?)");
        assert_eq!(sql.values.len(), 3);
    }
}
