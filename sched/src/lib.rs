//! Scheduling decisions for Keel (work in progress).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
