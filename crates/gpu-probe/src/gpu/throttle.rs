//! Decoding NVML's clock-event ("throttle") reasons bitmask.

use nvml_wrapper::bitmasks::device::ThrottleReasons;

/// Each reason bit and the short name it is reported as. (`USER_DEFINED_CLOCKS` is a
/// deprecated alias of `APPLICATIONS_CLOCKS_SETTING`, same bit, so it is not listed.)
const REASON_NAMES: [(ThrottleReasons, &str); 9] = [
    (ThrottleReasons::GPU_IDLE, "gpu_idle"),
    (
        ThrottleReasons::APPLICATIONS_CLOCKS_SETTING,
        "applications_clocks_setting",
    ),
    (ThrottleReasons::SW_POWER_CAP, "sw_power_cap"),
    (ThrottleReasons::HW_SLOWDOWN, "hw_slowdown"),
    (ThrottleReasons::SYNC_BOOST, "sync_boost"),
    (ThrottleReasons::SW_THERMAL_SLOWDOWN, "sw_thermal"),
    (ThrottleReasons::HW_THERMAL_SLOWDOWN, "hw_thermal"),
    (ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN, "hw_power_brake"),
    (
        ThrottleReasons::DISPLAY_CLOCK_SETTING,
        "display_clock_setting",
    ),
];

/// The names of the reasons set in an NVML clock-event ("throttle") bitmask, in bit order:
/// `"gpu_idle"`, `"applications_clocks_setting"`, `"sw_power_cap"`, `"hw_slowdown"`,
/// `"sync_boost"`, `"sw_thermal"`, `"hw_thermal"`, `"hw_power_brake"`,
/// `"display_clock_setting"`; bits this list does not know come out as `"unknown_0x..."`.
/// An empty mask (NVML's `NONE`: clocks as high as possible) gives an empty list.
///
/// (nvml-wrapper 0.13 still calls the type `ThrottleReasons`; NVML itself renamed it to
/// clock-event reasons.)
///
/// ```
/// use gpu_probe::throttle_reason_names;
/// use nvml_wrapper::bitmasks::device::ThrottleReasons;
/// let mask = ThrottleReasons::SW_POWER_CAP | ThrottleReasons::HW_SLOWDOWN;
/// assert_eq!(throttle_reason_names(mask), ["sw_power_cap", "hw_slowdown"]);
/// ```
pub fn throttle_reason_names(reasons: ThrottleReasons) -> Vec<String> {
    let mut names: Vec<String> = REASON_NAMES
        .iter()
        .filter(|(bit, _)| reasons.contains(*bit))
        .map(|(_, name)| (*name).to_string())
        .collect();
    let known = REASON_NAMES
        .iter()
        .fold(ThrottleReasons::empty(), |acc, (bit, _)| acc | *bit);
    let unknown = reasons.bits() & !known.bits();
    if unknown != 0 {
        names.push(format!("unknown_{unknown:#x}"));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_mask_is_no_reasons() {
        assert!(throttle_reason_names(ThrottleReasons::empty()).is_empty());
        assert!(throttle_reason_names(ThrottleReasons::NONE).is_empty());
    }

    #[test]
    fn every_known_bit_has_its_own_name() {
        for (bit, name) in REASON_NAMES {
            assert_eq!(throttle_reason_names(bit), [name]);
            assert_eq!(bit.bits().count_ones(), 1, "{name} is not one bit");
        }
        let all = REASON_NAMES
            .iter()
            .fold(ThrottleReasons::empty(), |acc, (b, _)| acc | *b);
        assert_eq!(throttle_reason_names(all).len(), REASON_NAMES.len());
    }

    #[test]
    fn deprecated_alias_decodes_as_applications_clocks() {
        #[allow(deprecated)]
        let alias = ThrottleReasons::USER_DEFINED_CLOCKS;
        assert_eq!(
            throttle_reason_names(alias),
            ["applications_clocks_setting"]
        );
    }

    #[test]
    fn unknown_bits_are_reported_not_dropped() {
        let mask = ThrottleReasons::from_bits_retain(ThrottleReasons::GPU_IDLE.bits() | (1 << 40));
        assert_eq!(
            throttle_reason_names(mask),
            ["gpu_idle".to_string(), format!("unknown_{:#x}", 1u64 << 40)]
        );
    }
}
