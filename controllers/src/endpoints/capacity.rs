//! The 1,000-address cap of an Endpoints object (upstream `truncateEndpoints`).

use k8s_openapi::api::core::v1::EndpointSubset;

/// Most addresses (ready plus not ready) one Endpoints object may hold.
pub const MAX_CAPACITY: usize = 1000;

fn count(list: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>) -> usize {
    list.as_ref().map_or(0, Vec::len)
}

/// Total addresses, ready and not ready, over all subsets.
pub fn total_addresses(subsets: &[EndpointSubset]) -> usize {
    subsets
        .iter()
        .map(|s| count(&s.addresses) + count(&s.not_ready_addresses))
        .sum()
}

/// Truncates subsets to [`MAX_CAPACITY`] addresses; returns whether anything was cut.
///
/// Ready addresses are kept before not-ready ones. Each subset keeps a share proportional to
/// its size, rounded up in f64 exactly as upstream computes it (divide, multiply, ceil), so the
/// last subsets absorb the rounding; within a list the first addresses survive.
pub fn truncate_subsets(subsets: &mut [EndpointSubset]) -> bool {
    let total_ready: usize = subsets.iter().map(|s| count(&s.addresses)).sum();
    let total_not_ready: usize = subsets.iter().map(|s| count(&s.not_ready_addresses)).sum();
    if total_ready + total_not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = total_ready > MAX_CAPACITY;
    let (budget, pool) = if truncate_ready {
        (MAX_CAPACITY, total_ready)
    } else {
        (MAX_CAPACITY - total_ready, total_not_ready)
    };
    let mut can_be_added = budget;
    for subset in subsets.iter_mut() {
        let in_subset = if truncate_ready {
            count(&subset.addresses)
        } else {
            count(&subset.not_ready_addresses)
        };
        let share = ((in_subset as f64 / pool as f64) * budget as f64).ceil() as usize;
        let keep = share.min(can_be_added);
        let list = if truncate_ready {
            subset.not_ready_addresses = None;
            &mut subset.addresses
        } else {
            &mut subset.not_ready_addresses
        };
        if let Some(addresses) = list.as_mut() {
            addresses.truncate(keep);
        }
        can_be_added -= count(list);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::EndpointAddress;

    fn addresses(n: usize, base: usize) -> Option<Vec<EndpointAddress>> {
        (n > 0).then(|| {
            (0..n)
                .map(|i| EndpointAddress {
                    ip: format!("10.{}.{}.{}", base, i / 256, i % 256),
                    ..Default::default()
                })
                .collect()
        })
    }

    fn subsets(ready: &[usize], not_ready: &[usize]) -> Vec<EndpointSubset> {
        ready
            .iter()
            .zip(not_ready)
            .enumerate()
            .map(|(i, (r, n))| EndpointSubset {
                addresses: addresses(*r, i),
                not_ready_addresses: addresses(*n, 100 + i),
                ports: None,
            })
            .collect()
    }

    fn counts(subsets: &[EndpointSubset]) -> (Vec<usize>, Vec<usize>) {
        (
            subsets.iter().map(|s| count(&s.addresses)).collect(),
            subsets
                .iter()
                .map(|s| count(&s.not_ready_addresses))
                .collect(),
        )
    }

    // TestTruncateEndpoints (EP-23).
    #[test]
    fn truncate_endpoints_vectors() {
        let mut empty: Vec<EndpointSubset> = vec![];
        assert!(!truncate_subsets(&mut empty));

        let mut under = subsets(&[50, 100, 100, 100, 100], &[50, 100, 100, 100, 100]);
        assert!(!truncate_subsets(&mut under));
        assert_eq!(
            counts(&under),
            (vec![50, 100, 100, 100, 100], vec![50, 100, 100, 100, 100])
        );

        let mut exact = subsets(&[100; 5], &[100; 5]);
        assert!(!truncate_subsets(&mut exact));
        assert_eq!(counts(&exact), (vec![100; 5], vec![100; 5]));

        let mut not_ready_cut = subsets(&[90, 110, 50, 10, 20], &[101, 200, 200, 201, 298]);
        assert!(truncate_subsets(&mut not_ready_cut));
        assert_eq!(
            counts(&not_ready_cut),
            (vec![90, 110, 50, 10, 20], vec![73, 144, 144, 145, 214])
        );

        let mut ready_cut = subsets(&[205, 400, 402, 400, 693], &[100, 200, 200, 200, 300]);
        assert!(truncate_subsets(&mut ready_cut));
        assert_eq!(
            counts(&ready_cut),
            (vec![98, 191, 192, 191, 328], vec![0; 5])
        );
    }

    #[test]
    fn first_addresses_survive() {
        let mut one = subsets(&[1001], &[0]);
        assert!(truncate_subsets(&mut one));
        let kept = one[0].addresses.as_deref().unwrap_or_default();
        assert_eq!(kept.len(), 1000);
        assert_eq!(kept[0].ip, "10.0.0.0");
        assert_eq!(kept[999].ip, "10.0.3.231");
    }
}
