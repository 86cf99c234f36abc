// Package storetest is the contract suite every store.Store implementation
// must pass. Run checks the semantics of one open store; RunDurable
// additionally closes and reopens a durable store on the same directory and
// checks that everything committed survived.
//
// Implementations call it from their own tests:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() })
//	}
//
// Equality of records is checked after normalising what a store may
// legitimately change: times are compared as instants (location and
// monotonic clock dropped) and empty slices may come back as nil.
package storetest
