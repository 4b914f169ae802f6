//! Host interrupts Keel forwards to a guest (an assigned device's IRQs):
//! which host GSI goes to which vector and on to which domain's GSI, and
//! the host I/O APIC redirection entries that deliver them. The vectors are
//! the device range of `arch::device_interrupts` (0x40..=0x7f) between the
//! IOMMU self-test's (0x40) and the IOMMU's fault event interrupt (0x7f):
//! 62 forwarded interrupts (INTx inputs, ISA IRQs, MSIs) at once, in the
//! lowest priority classes, below the host timer's.

use alloc::vec::Vec;

pub const FIRST_VECTOR: u8 = 0x41;
/// Where the IOMMU's remapping units send their fault event interrupt (a
/// compatibility-format MSI: fault events are never remapped). The last
/// device vector; forwarded interrupts never take it.
pub const IOMMU_FAULT_VECTOR: u8 = 0x7f;
pub const LAST_VECTOR: u8 = IOMMU_FAULT_VECTOR - 1;

/// One forwarded interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub host_gsi: u32,
    pub vector: u8,
    pub domain: u32,
    pub guest_gsi: u32,
    pub level_triggered: bool,
    pub active_low: bool,
    /// `Some(device)`: a PCI function's INTx, forwarded level-triggered to
    /// the function at 00:device.0 of the guest (the host input is masked
    /// when it fires and unmasked when the guest acknowledges it); `None`:
    /// each interrupt is one edge on `guest_gsi` (legacy ISA IRQs).
    pub intx_slot: Option<u8>,
    /// `Some(device)`: the MSI of the function at 00:device.0 of the guest
    /// (Keel programs the real device with this route's vector, and the
    /// guest's own message is delivered from the model); `host_gsi`,
    /// `guest_gsi`, trigger and polarity then mean nothing.
    pub msi_slot: Option<u8>,
    /// With `msi_slot`: `Some(entry)` for that function's MSI-X table
    /// entry `entry` (each entry the guest uses has a host vector of its
    /// own), `None` for its MSI.
    pub msix_entry: Option<u16>,
    /// The host function whose interrupt this is (bus << 8 | device << 3
    /// | function): its routes go when it is taken back.
    pub function: u16,
}

/// The compatibility-format MSI address and data that send `vector`,
/// edge-triggered with fixed delivery, to the local APIC `apic_id`
/// (physical destination): where no remapping unit remaps the device's
/// interrupts.
pub const fn compatibility_msi(apic_id: u8, vector: u8) -> (u32, u16) {
    (0xfee0_0000 | (apic_id as u32) << 12, vector as u16)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// Another route already takes this host GSI.
    GsiInUse,
    /// Every vector of the range is taken.
    NoVector,
}

#[derive(Default)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// Routes `host_gsi` to `domain`'s `guest_gsi` on a free vector.
    pub fn add(&mut self, template: Route) -> Result<Route, RouteError> {
        let Route { host_gsi, .. } = template;
        let takes_gsi = |route: &Route| route.msi_slot.is_none() && route.host_gsi == host_gsi;
        if template.msi_slot.is_none() && self.routes.iter().any(takes_gsi) {
            return Err(RouteError::GsiInUse);
        }
        let vector = (FIRST_VECTOR..=LAST_VECTOR)
            .find(|vector| self.routes.iter().all(|route| route.vector != *vector))
            .ok_or(RouteError::NoVector)?;
        let route = Route { vector, ..template };
        self.routes.push(route);
        Ok(route)
    }

    /// The route of `domain`'s INTx forwarding to guest slot `device`.
    pub fn by_intx_slot(&self, domain: u32, device: u8) -> Option<Route> {
        self.routes
            .iter()
            .copied()
            .find(|route| route.domain == domain && route.intx_slot == Some(device))
    }

    /// The route of `domain`'s MSI forwarding to guest slot `device`.
    pub fn by_msi_slot(&self, domain: u32, device: u8) -> Option<Route> {
        self.routes
            .iter()
            .copied()
            .find(|route| route.domain == domain && route.msi_slot == Some(device) && route.msix_entry.is_none())
    }

    /// The routes of `domain`'s MSI-X forwarding to guest slot `device`,
    /// one per table entry.
    pub fn msix_routes(&self, domain: u32, device: u8) -> Vec<Route> {
        self.routes
            .iter()
            .copied()
            .filter(|route| route.domain == domain && route.msi_slot == Some(device) && route.msix_entry.is_some())
            .collect()
    }

    /// How many routes of `domain` forward an MSI or MSI-X entry.
    pub fn message_routes(&self, domain: u32) -> usize {
        self.routes
            .iter()
            .filter(|route| route.domain == domain && route.msi_slot.is_some())
            .count()
    }

    /// Removes and returns every route of `domain`'s host `function`.
    pub fn remove_function(&mut self, domain: u32, function: u16) -> Vec<Route> {
        let (removed, kept) = self
            .routes
            .iter()
            .partition(|route| route.domain == domain && route.function == function);
        self.routes = kept;
        removed
    }

    /// Removes and returns one route (by its vector).
    pub fn remove(&mut self, vector: u8) -> Option<Route> {
        let position = self.routes.iter().position(|route| route.vector == vector)?;
        Some(self.routes.remove(position))
    }

    pub fn by_vector(&self, vector: u8) -> Option<Route> {
        self.routes.iter().copied().find(|route| route.vector == vector)
    }

    /// Removes and returns every route of `domain`.
    pub fn remove_domain(&mut self, domain: u32) -> Vec<Route> {
        let (removed, kept) = self.routes.iter().partition(|route| route.domain == domain);
        self.routes = kept;
        removed
    }
}

/// An I/O APIC redirection entry: fixed delivery, physical destination
/// `apic_id` (bits 63:56), the vector, polarity (bit 13), trigger (bit 15)
/// and mask (bit 16).
pub const fn redirection_entry(route: &Route, apic_id: u8, masked: bool) -> u64 {
    (route.vector as u64)
        | (route.active_low as u64) << 13
        | (route.level_triggered as u64) << 15
        | (masked as u64) << 16
        | (apic_id as u64) << 56
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(host_gsi: u32, domain: u32, guest_gsi: u32) -> Route {
        Route {
            host_gsi,
            vector: 0,
            domain,
            guest_gsi,
            level_triggered: false,
            active_low: false,
            intx_slot: None,
            msi_slot: None,
            msix_entry: None,
            function: 0,
        }
    }

    #[test]
    fn routes_take_free_vectors_and_refuse_a_shared_gsi() {
        let mut routes = Routes::default();
        let ide_primary = routes.add(edge(14, 3, 14)).unwrap();
        let ide_secondary = routes.add(edge(15, 3, 15)).unwrap();
        assert_eq!((ide_primary.vector, ide_secondary.vector), (0x41, 0x42));
        assert_eq!(routes.add(edge(14, 4, 14)), Err(RouteError::GsiInUse));
        assert_eq!(routes.by_vector(0x42).map(|route| route.guest_gsi), Some(15));
        let removed = routes.remove_domain(3);
        assert_eq!(removed.len(), 2);
        assert_eq!(routes.by_vector(0x41), None);
        assert_eq!(routes.add(edge(14, 4, 14)).unwrap().vector, 0x41, "vectors are reused");
        let vectors = u32::from(LAST_VECTOR - FIRST_VECTOR) + 1;
        assert_eq!(vectors, 62, "0x41..=0x7e: 0x40 is the self-test's, 0x7f the IOMMU's");
        // One route (GSI 14) is there already.
        for gsi in 100..100 + vectors - 1 {
            let route = routes.add(edge(gsi, 5, gsi)).unwrap();
            assert_ne!(route.vector, IOMMU_FAULT_VECTOR);
        }
        assert_eq!(
            routes.by_vector(LAST_VECTOR).map(|route| route.host_gsi),
            Some(100 + vectors - 2)
        );
        assert_eq!(routes.add(edge(300, 5, 300)), Err(RouteError::NoVector));
    }

    #[test]
    fn msi_routes_take_vectors_but_no_gsi_and_are_found_by_slot() {
        let mut routes = Routes::default();
        let intx = routes
            .add(Route {
                intx_slot: Some(4),
                ..edge(11, 7, 16)
            })
            .unwrap();
        let msi = Route {
            msi_slot: Some(4),
            ..edge(0, 7, 0)
        };
        let first = routes.add(msi).unwrap();
        let second = routes
            .add(Route {
                msi_slot: Some(5),
                ..msi
            })
            .unwrap();
        assert_ne!(first.vector, second.vector, "MSI routes do not clash on a GSI");
        assert_eq!(routes.by_msi_slot(7, 4), Some(first));
        assert_eq!(
            routes.by_intx_slot(7, 4),
            Some(intx),
            "the same function's INTx route stays"
        );
        assert_eq!(routes.remove(first.vector), Some(first));
        let other_function = routes
            .add(Route {
                function: 9,
                ..edge(12, 7, 17)
            })
            .unwrap();
        assert_eq!(
            routes.remove_function(7, 0).len(),
            2,
            "function 0's INTx and MSI routes"
        );
        assert_eq!(
            routes.by_vector(other_function.vector),
            Some(other_function),
            "function 9's stays"
        );
        assert_eq!(routes.by_msi_slot(7, 4), None);
        assert_eq!(compatibility_msi(2, 0x45), (0xfee0_2000, 0x45));
    }

    #[test]
    fn intx_routes_are_found_by_domain_and_guest_slot() {
        let mut routes = Routes::default();
        let intx = Route {
            level_triggered: true,
            active_low: true,
            intx_slot: Some(4),
            ..edge(11, 7, 16)
        };
        let added = routes.add(intx).unwrap();
        routes.add(edge(14, 7, 17)).unwrap();
        assert_eq!(routes.by_intx_slot(7, 4), Some(added));
        assert_eq!(routes.by_intx_slot(8, 4), None, "another domain's slot 4");
        assert_eq!(routes.by_intx_slot(7, 5), None);
    }

    #[test]
    fn redirection_entries_encode_vector_polarity_trigger_mask_and_destination() {
        let route = Route {
            host_gsi: 14,
            vector: 0x41,
            domain: 1,
            guest_gsi: 14,
            level_triggered: false,
            active_low: false,
            intx_slot: None,
            msi_slot: None,
            msix_entry: None,
            function: 0,
        };
        assert_eq!(redirection_entry(&route, 0, false), 0x41);
        assert_eq!(redirection_entry(&route, 2, true), 0x0200_0000_0001_0041);
        let level = Route {
            level_triggered: true,
            active_low: true,
            ..route
        };
        assert_eq!(redirection_entry(&level, 0, false), 0xa041);
    }
}
