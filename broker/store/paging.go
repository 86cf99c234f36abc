package store

// QueueItem is a queue entry with its message, as read from a store.
type QueueItem struct {
	Entry   QueueEntry
	Message *Message
}

// QueueSize is a queue entry with its message's size, as read from a
// store by ReadQueueEntries.
type QueueSize struct {
	Entry QueueEntry
	Size  int64
}

// queued is what a page of ReadPaged may hold.
type queued interface {
	QueueItem | QueueSize
	seq() uint64
}

func (it QueueItem) seq() uint64 { return it.Entry.Seq }
func (it QueueSize) seq() uint64 { return it.Entry.Seq }

// ReadPaged implements Store.ReadQueue's and Store.ReadQueueEntries'
// paging for store implementations: it calls readPage for at most
// pageSize items after a Seq at a time, so that memory stays bounded
// whatever the queue length and no lock or snapshot is held while fn
// runs, and hands them to fn in order until fn returns false, limit items
// were read (limit <= 0: no limit), or a page comes back empty.
func ReadPaged[T queued](afterSeq uint64, limit, pageSize int,
	readPage func(afterSeq uint64, n int) ([]T, error),
	fn func(*T) bool) error {
	read := 0
	for {
		n := pageSize
		if limit > 0 && limit-read < n {
			n = limit - read
		}
		if n <= 0 || afterSeq == ^uint64(0) { // no Seq after the last
			return nil
		}
		items, err := readPage(afterSeq, n)
		if err != nil || len(items) == 0 {
			return err
		}
		for i := range items {
			if !fn(&items[i]) {
				return nil
			}
			afterSeq = items[i].seq()
		}
		read += len(items)
	}
}
