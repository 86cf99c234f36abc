package faultproxy

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is how Partition cuts the link.
type Mode int32

const (
	flowing Mode = iota
	// Blackhole keeps connections open and discards every byte.
	Blackhole
	// Reset closes every connection with a TCP RST and resets new ones.
	Reset
)

func (m Mode) String() string {
	switch m {
	case flowing:
		return "flowing"
	case Blackhole:
		return "blackhole"
	case Reset:
		return "reset"
	}
	return fmt.Sprintf("Mode(%d)", int32(m))
}

// Defaults of the options.
const (
	DefaultChunkSize   = 64 << 10
	DefaultMaxQueued   = 1 << 20
	DefaultMaxConns    = 1024
	DefaultDialTimeout = 5 * time.Second
	DefaultSeed        = 1
)

type config struct {
	seed        uint64
	chunkSize   int
	maxQueued   int
	maxConns    int
	dialTimeout time.Duration
}

func defaults() config {
	return config{seed: DefaultSeed, chunkSize: DefaultChunkSize, maxQueued: DefaultMaxQueued,
		maxConns: DefaultMaxConns, dialTimeout: DefaultDialTimeout}
}

func (c config) validate() error {
	switch {
	case c.chunkSize <= 0 || c.chunkSize > 16<<20:
		return fmt.Errorf("faultproxy: chunk size %d out of (0, 16 MiB]", c.chunkSize)
	case c.maxQueued < c.chunkSize || c.maxQueued > 1<<30:
		return fmt.Errorf("faultproxy: max queued %d out of [chunk size %d, 1 GiB]", c.maxQueued, c.chunkSize)
	case c.maxConns <= 0:
		return fmt.Errorf("faultproxy: max connections %d must be positive", c.maxConns)
	case c.dialTimeout <= 0:
		return fmt.Errorf("faultproxy: dial timeout %s must be positive", c.dialTimeout)
	}
	return nil
}

// Option configures New and NewMesh.
type Option func(*config)

// WithSeed seeds the generator that SetDropConnections draws from (default
// DefaultSeed). A Mesh derives each link's seed from it.
func WithSeed(seed uint64) Option { return func(c *config) { c.seed = seed } }

// WithChunkSize sets the most bytes read at once, one delay-stamped chunk
// (default DefaultChunkSize).
func WithChunkSize(n int) Option { return func(c *config) { c.chunkSize = n } }

// WithMaxQueued bounds the bytes waiting in each direction of a
// connection (default DefaultMaxQueued); past it the proxy stops reading.
func WithMaxQueued(n int) Option { return func(c *config) { c.maxQueued = n } }

// WithMaxConns bounds the open connections (default DefaultMaxConns);
// one more is reset and counted as Rejected.
func WithMaxConns(n int) Option { return func(c *config) { c.maxConns = n } }

// WithDialTimeout bounds the dial to the target (default
// DefaultDialTimeout); a connection whose dial fails is reset.
func WithDialTimeout(d time.Duration) Option { return func(c *config) { c.dialTimeout = d } }

// Stats counts what a proxy did since New.
type Stats struct {
	Accepted   int64 // connections accepted on the listener
	Forwarded  int64 // connections dialled through to the target
	Dropped    int64 // reset by SetDropConnections
	Refused    int64 // reset on accept while partitioned with Reset
	Rejected   int64 // reset on accept at WithMaxConns
	DialFailed int64 // reset because the target could not be dialled
	Open       int   // connections open now

	BytesToTarget     int64 // forwarded from clients to the target
	BytesToClient     int64 // forwarded from the target to clients
	DiscardedToTarget int64 // read from clients and discarded by a blackhole
	DiscardedToClient int64 // read from the target and discarded by a blackhole
	MaxQueued         int64 // most bytes ever read and not yet written in one direction of one connection
}

type counters struct {
	accepted, forwarded, dropped, refused, rejected, dialFailed atomic.Int64
	toTarget, toClient, discardedToTarget, discardedToClient    atomic.Int64
	maxQueued                                                   atomic.Int64
}

func (c *counters) queued(n int64) {
	for {
		m := c.maxQueued.Load()
		if n <= m || c.maxQueued.CompareAndSwap(m, n) {
			return
		}
	}
}

// Proxy forwards the connections it accepts to a target, with faults.
// Its methods are safe for concurrent use.
type Proxy struct {
	cfg   config
	ln    net.Listener
	pool  sync.Pool // *[]byte of cfg.chunkSize
	mode  atomic.Int32
	delay atomic.Int64
	stats counters

	mu     sync.Mutex // guards what follows
	target string
	conns  map[*conn]struct{}
	rng    *rand.Rand
	drop   float64
	closed bool

	wg sync.WaitGroup // the accept loop and every connection
}

// New listens on listen (a loopback address; port 0 picks one) and
// forwards every connection it accepts to target (a loopback address).
func New(listen, target string, opts ...Option) (*Proxy, error) {
	cfg := defaults()
	for _, o := range opts {
		o(&cfg)
	}
	return newProxy(listen, target, cfg)
}

func newProxy(listen, target string, cfg config) (*Proxy, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := checkLoopback(listen, true); err != nil {
		return nil, err
	}
	if err := checkLoopback(target, false); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &Proxy{
		cfg: cfg, ln: ln, target: target, conns: map[*conn]struct{}{},
		rng: rand.New(rand.NewPCG(cfg.seed, cfg.seed^0x9e3779b97f4a7c15)),
	}
	p.pool.New = func() any { b := make([]byte, cfg.chunkSize); return &b }
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is where new connections go.
func (p *Proxy) Target() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target
}

// SetTarget sends new connections to addr (a loopback address);
// established ones keep theirs.
func (p *Proxy) SetTarget(addr string) error {
	if err := checkLoopback(addr, false); err != nil {
		return err
	}
	p.mu.Lock()
	p.target = addr
	p.mu.Unlock()
	return nil
}

// Partition cuts the link in mode m (Blackhole or Reset) until Heal; see
// the package documentation. It panics on any other mode.
func (p *Proxy) Partition(m Mode) {
	if m != Blackhole && m != Reset {
		panic(fmt.Sprintf("faultproxy: Partition(%s)", m))
	}
	p.mu.Lock()
	p.mode.Store(int32(m))
	var victims []*conn
	if m == Reset {
		victims = p.connsLocked(func(*conn) bool { return true })
	}
	p.mu.Unlock()
	for _, c := range victims {
		c.abort(true)
	}
}

// Heal lets traffic flow again and closes the connections a blackhole
// broke (see the package documentation).
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.mode.Store(int32(flowing))
	victims := p.connsLocked(func(c *conn) bool { return c.broken.Load() })
	p.mu.Unlock()
	for _, c := range victims {
		c.abort(false)
	}
}

// Mode reports the partition in force: Blackhole, Reset, or 0 when the
// link flows.
func (p *Proxy) Mode() Mode { return Mode(p.mode.Load()) }

func (p *Proxy) blackholed() bool { return Mode(p.mode.Load()) == Blackhole }

// SetDelay adds a one-way latency of d to every chunk read from now on,
// in each direction; 0 removes it. A negative d is an error.
func (p *Proxy) SetDelay(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("faultproxy: negative delay %s", d)
	}
	p.delay.Store(int64(d))
	return nil
}

// SetDropConnections resets each new connection with probability prob
// (in [0, 1]), drawn from the seeded generator.
func (p *Proxy) SetDropConnections(prob float64) error {
	if math.IsNaN(prob) || prob < 0 || prob > 1 {
		return fmt.Errorf("faultproxy: drop probability %v out of [0, 1]", prob)
	}
	p.mu.Lock()
	p.drop = prob
	p.mu.Unlock()
	return nil
}

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	open := len(p.conns)
	p.mu.Unlock()
	s := &p.stats
	return Stats{
		Accepted: s.accepted.Load(), Forwarded: s.forwarded.Load(), Dropped: s.dropped.Load(),
		Refused: s.refused.Load(), Rejected: s.rejected.Load(), DialFailed: s.dialFailed.Load(), Open: open,
		BytesToTarget: s.toTarget.Load(), BytesToClient: s.toClient.Load(),
		DiscardedToTarget: s.discardedToTarget.Load(), DiscardedToClient: s.discardedToClient.Load(),
		MaxQueued: s.maxQueued.Load(),
	}
}

// Close stops listening, closes every connection and waits for every
// goroutine of the proxy to end. It returns the listener's close error.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	victims := p.connsLocked(func(*conn) bool { return true })
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range victims {
		c.abort(false)
	}
	p.wg.Wait()
	if err != nil {
		return fmt.Errorf("faultproxy: close: %w", err)
	}
	return nil
}

func (p *Proxy) connsLocked(pick func(*conn) bool) []*conn {
	var out []*conn
	for c := range p.conns {
		if pick(c) {
			out = append(out, c)
		}
	}
	return out
}

// acceptBackoff is the pause after an Accept error other than a closed
// listener (out of file descriptors), so the loop does not spin.
const acceptBackoff = 10 * time.Millisecond

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			time.Sleep(acceptBackoff)
			continue
		}
		p.stats.accepted.Add(1)
		p.admit(nc)
	}
}

// admit decides the fate of an accepted connection and starts it.
func (p *Proxy) admit(nc net.Conn) {
	p.mu.Lock()
	var count *atomic.Int64
	switch {
	case p.closed:
	case Mode(p.mode.Load()) == Reset:
		count = &p.stats.refused
	case len(p.conns) >= p.cfg.maxConns:
		count = &p.stats.rejected
	case p.drop > 0 && p.rng.Float64() < p.drop:
		count = &p.stats.dropped
	default:
		c := newConn(p, nc)
		// Accepted during a blackhole: never dialled, closed on heal.
		orphan := p.blackholed()
		c.broken.Store(orphan)
		p.conns[c] = struct{}{}
		target := p.target
		p.wg.Add(1)
		p.mu.Unlock()
		go c.run(target, orphan)
		return
	}
	p.mu.Unlock()
	if count != nil {
		count.Add(1)
	}
	closeConn(nc, true)
}

// finish forgets a connection whose goroutines have all ended.
func (p *Proxy) finish(c *conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	p.wg.Done()
}

// closeConn closes nc, with a RST when rst is set.
func closeConn(nc net.Conn, rst bool) {
	if tc, ok := nc.(*net.TCPConn); ok && rst {
		_ = tc.SetLinger(0) // best effort: a plain close still ends it
	}
	_ = nc.Close() // already closed by the peer or by an earlier abort
}
