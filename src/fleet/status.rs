//! `dbflow migrate status` over a fleet: the version matrix.
