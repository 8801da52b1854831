//! The catalog file: SKUs to create when the server starts, in TOML (see
//! `docs/catalog.example.toml`). This module owns parsing and validating the file into
//! [`SkuConfig`]s; applying them is the server's job, and it must not touch the engine itself.

use std::path::Path;

use serde::Deserialize;

use crate::types::{SkuConfig, SkuId};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read catalog {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("catalog is not valid: {0}")]
    Parse(String),
    #[error("catalog sku {sku_id}: {reason}")]
    Invalid { sku_id: SkuId, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    sku: Vec<SkuEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SkuEntry {
    sku_id: SkuId,
    stock_total: u64,
    per_user_limit: u32,
    hold_ttl_ms: u64,
    sale_start_ms: Option<u64>,
    sale_end_ms: Option<u64>,
    price_cents: Option<u64>,
}

/// Parses and validates catalog text. Duplicate ids and invalid settings are errors naming the
/// SKU and the field.
pub fn parse_catalog(text: &str) -> Result<Vec<SkuConfig>, CatalogError> {
    let file: CatalogFile =
        toml::from_str(text).map_err(|error| CatalogError::Parse(error.to_string()))?;
    let mut seen = std::collections::HashSet::new();
    let mut configs = Vec::with_capacity(file.sku.len());
    for entry in file.sku {
        let config = SkuConfig {
            sku_id: entry.sku_id,
            stock_total: entry.stock_total,
            per_user_limit: entry.per_user_limit,
            hold_ttl_ms: entry.hold_ttl_ms,
            sale_start_ms: entry.sale_start_ms,
            sale_end_ms: entry.sale_end_ms,
            price_cents: entry.price_cents.unwrap_or(0),
        };
        config.validate().map_err(|reason| CatalogError::Invalid {
            sku_id: config.sku_id,
            reason: reason.to_owned(),
        })?;
        if !seen.insert(config.sku_id) {
            return Err(CatalogError::Invalid {
                sku_id: config.sku_id,
                reason: "sku_id appears more than once".to_owned(),
            });
        }
        configs.push(config);
    }
    Ok(configs)
}

/// Reads and parses a catalog file.
pub fn load_catalog(path: &Path) -> Result<Vec<SkuConfig>, CatalogError> {
    let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_catalog(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_catalog_parses() {
        let text = include_str!("../../../docs/catalog.example.toml");
        let configs = parse_catalog(text).unwrap();
        assert!(!configs.is_empty());
        assert!(configs.iter().all(|c| c.validate().is_ok()));
    }

    #[test]
    fn bad_catalogs_name_the_problem() {
        let err = parse_catalog(
            "[[sku]]\nsku_id = 1\nstock_total = -3\nper_user_limit = 1\nhold_ttl_ms = 5\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("stock_total"), "{err}");
        let err = parse_catalog(
            "[[sku]]\nsku_id = 1\nstock_total = 3\nper_user_limit = 0\nhold_ttl_ms = 5\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("per_user_limit"), "{err}");
        let dup = "[[sku]]\nsku_id = 1\nstock_total = 3\nper_user_limit = 1\nhold_ttl_ms = 5\n";
        let err = parse_catalog(&format!("{dup}{dup}")).unwrap_err();
        assert!(err.to_string().contains("more than once"), "{err}");
        let err = parse_catalog("[[sku]]\nsku_id = 1\nstock = 3\n").unwrap_err();
        assert!(err.to_string().contains("stock"), "{err}");
    }
}
