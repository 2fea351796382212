//! sam-burn
