//! Whole-table checks run once at parse time, so that iterating a parsed
//! [`Dmar`](super::Dmar) can never meet a malformed byte.

use super::scope::{DeviceScope, ScopeKind};
use super::structures::{Drhd, RawStructures, RemappingStructure, Structures};
use super::{DmarError, UnknownStructurePolicy, MAX_DEVICE_SCOPES};

pub(crate) fn validate(table: &[u8], policy: UnknownStructurePolicy) -> Result<(), DmarError> {
    let mut raw = RawStructures::new(table);
    let mut scope_count = 0usize;
    while let Some(structure) = raw.try_next()? {
        let structure = RemappingStructure::from_raw(structure, policy)?;
        if let Some(mut scopes) = structure.scopes() {
            while scopes.try_next()?.is_some() {
                scope_count += 1;
                if scope_count > MAX_DEVICE_SCOPES {
                    return Err(DmarError::TooManyScopes);
                }
            }
        }
    }
    check_units(table, policy)?;
    check_unit_scopes(table, policy)
}

fn drhds(table: &[u8], policy: UnknownStructurePolicy) -> impl Iterator<Item = Drhd<'_>> {
    Structures::new(table, policy).filter_map(|structure| match structure {
        RemappingStructure::Drhd(drhd) => Some(drhd),
        _ => None,
    })
}

/// Register sets are distinct and each segment has at most one catch-all
/// unit. Quadratic, but tables have a handful of units.
fn check_units(table: &[u8], policy: UnknownStructurePolicy) -> Result<(), DmarError> {
    for (index, first) in drhds(table, policy).enumerate() {
        for second in drhds(table, policy).skip(index + 1) {
            if first.register_base() == second.register_base() {
                return Err(DmarError::DuplicateRegisterBase {
                    base: first.register_base().as_u64(),
                });
            }
            if first.segment() == second.segment() && first.include_pci_all() && second.include_pci_all() {
                return Err(DmarError::MultipleIncludeAll {
                    segment: first.segment(),
                });
            }
        }
    }
    Ok(())
}

/// No device may be claimed twice by remapping units' scopes. Scopes are
/// compared as written (segment, start bus, path): resolving paths to bus
/// numbers needs PCI configuration space, so two different paths that
/// reach the same device through bridges are not caught here. Quadratic in
/// the number of scopes, which [`MAX_DEVICE_SCOPES`] bounds.
fn check_unit_scopes(table: &[u8], policy: UnknownStructurePolicy) -> Result<(), DmarError> {
    let unit_scopes = || drhds(table, policy).flat_map(|drhd| drhd.scopes().map(move |scope| (drhd.segment(), scope)));
    for (index, (first_segment, first)) in unit_scopes().enumerate() {
        for (second_segment, second) in unit_scopes().skip(index + 1) {
            if first_segment == second_segment {
                compare_scopes(&first, &second)?;
            }
        }
    }
    Ok(())
}

fn compare_scopes(first: &DeviceScope<'_>, second: &DeviceScope<'_>) -> Result<(), DmarError> {
    let offsets = (first.offset(), second.offset());
    let duplicate = DmarError::DuplicateScope {
        first: offsets.0,
        second: offsets.1,
    };
    match (first.kind().is_pci(), second.kind().is_pci()) {
        (true, true) => {
            if first.start_bus() != second.start_bus() {
                return Ok(());
            }
            let (first_path, second_path) = (first.path_bytes(), second.path_bytes());
            if first_path == second_path {
                return Err(duplicate);
            }
            let contains = |outer: &DeviceScope<'_>, outer_path: &[u8], inner_path: &[u8]| {
                outer.kind() == ScopeKind::PciSubHierarchy && inner_path.starts_with(outer_path)
            };
            if contains(first, first_path, second_path) || contains(second, second_path, first_path) {
                return Err(DmarError::OverlappingScopes {
                    first: offsets.0,
                    second: offsets.1,
                });
            }
            Ok(())
        }
        (false, false) if first.kind() == second.kind() && first.enumeration_id() == second.enumeration_id() => {
            Err(duplicate)
        }
        _ => Ok(()),
    }
}
