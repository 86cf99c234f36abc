package store

// QueueItem is a queue entry with its message, as read from a store.
type QueueItem struct {
	Entry   QueueEntry
	Message *Message
}

// ReadPaged implements Store.ReadQueue's paging for store implementations:
// it calls readPage for at most pageSize items after a Seq at a time, so
// that memory stays bounded whatever the queue length and no lock or
// snapshot is held while fn runs, and hands them to fn in order until fn
// returns false, limit items were read (limit <= 0: no limit), or a page
// comes back empty.
func ReadPaged(afterSeq uint64, limit, pageSize int,
	readPage func(afterSeq uint64, n int) ([]QueueItem, error),
	fn func(QueueEntry, *Message) bool) error {
	read := 0
	for {
		n := pageSize
		if limit > 0 && limit-read < n {
			n = limit - read
		}
		if n <= 0 {
			return nil
		}
		items, err := readPage(afterSeq, n)
		if err != nil || len(items) == 0 {
			return err
		}
		for _, it := range items {
			if !fn(it.Entry, it.Message) {
				return nil
			}
			afterSeq = it.Entry.Seq
		}
		read += len(items)
		if afterSeq == ^uint64(0) {
			return nil
		}
	}
}
