//! `diag catalog`: the causes and the messages each one explains.

use super::args::CatalogArgs;
use crate::explain::{catalog, docs};
use anyhow::Result;

pub fn catalog(args: CatalogArgs) -> Result<i32> {
    let c = catalog::builtin();
    print!(
        "{}",
        if args.markdown {
            docs::markdown(c)
        } else if args.json {
            catalog::builtin_json()
        } else {
            docs::text(c)
        }
    );
    Ok(0)
}
