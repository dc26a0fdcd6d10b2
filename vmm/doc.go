// Package vmm will be the albatross-style unikernel orchestrator whose boot
// gate refuses any image that fewer than k trusted rebuilders attested.
//
// Nothing is implemented here yet.
package vmm
