// Package server is the only broker package that touches the network: it
// owns the Server (the broker instance), one read loop and one bounded
// writer goroutine per connection, CONNECT handling, keep alive, session
// takeover and packet dispatch into sessions (broker/session) and the
// router (broker/router). Listeners, the admin HTTP endpoint, metrics,
// config reload watching and shutdown sequencing live in this package too,
// in the admin*, listen*, metrics*, reload* and shutdown* files, and use
// only the API below.
//
// # API for listeners, admin and cmd/bollard
//
//	func New(cfg *config.Config, st store.Store, opts ...Option) (*Server, error)
//	    Options: WithLogger(*slog.Logger), WithClock(func() time.Time),
//	    WithAuthenticator(Authenticator).
//	func (s *Server) Start(ctx context.Context) error
//	    Recovers sessions and retained messages from the store, sweeps what
//	    expired while the broker was down, starts the expiry sweeper. After
//	    it returns, ServeConn may be called and Ready reports true.
//	func (s *Server) ServeConn(c net.Conn)
//	    Serves one accepted connection until it ends; blocks. Listeners call
//	    it in their own goroutine (also for WebSocket-wrapped conns). While
//	    draining or before Start it closes c at once.
//	func (s *Server) Ready() bool
//	    Recovered and not draining.
//	func (s *Server) Drain(ctx context.Context) error
//	    Stops accepting (ServeConn refuses), sends 5.0 clients DISCONNECT
//	    0x8B, closes every connection, waits for in-flight store commits and
//	    the sweeper, bounded by ctx. The caller closes the store afterwards.
//	func (s *Server) ApplyConfig(cfg *config.Config) []config.Change
//	    Applies the hot fields of cfg (queue limits, expiry caps, limits,
//	    auth, log level) and returns the changed fields that wait for a
//	    restart (config.Diff entries of class Restart).
//	func (s *Server) ConfigGeneration() int64
//	func (s *Server) Stats() Stats
//	func (s *Server) Sessions() []SessionInfo
//	func (s *Server) Session(clientID string) (SessionInfo, bool)
//
// All methods are safe for concurrent use. See locksordering.txt for the
// lock order inside the package.
package server
