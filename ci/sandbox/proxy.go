package sandbox

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"sync"
)

// Forward accepts TCP connections on host:port for each port of forwards and relays them to its
// target (host:port) until ctx ends.
func Forward(ctx context.Context, host string, forwards map[int]string) error {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for port, target := range forwards {
		l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", host, port))
		if err != nil {
			return err
		}
		ls = append(ls, l)
		go accept(l, target)
	}
	<-ctx.Done()
	return nil
}

func accept(l net.Listener, target string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go relay(c, target)
	}
}

func relay(c net.Conn, target string) {
	defer c.Close()
	t, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer t.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(t, c); closeWrite(t) }()
	go func() { defer wg.Done(); _, _ = io.Copy(c, t); closeWrite(c) }()
	wg.Wait()
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// Where says what each forwarded port is, for the person at the host: the sandbox is theirs, so its
// throwaway credentials are shown here, and only here.
func Where(forwards map[int]string, gitPassword, argoPassword string) []string {
	var out []string
	for _, p := range slices.Sorted(maps.Keys(forwards)) {
		switch t := forwards[p]; {
		case p == ArgoCDPort || t == fmt.Sprintf("%s:%d", ArgoCDHost, ArgoCDPort):
			out = append(out, fmt.Sprintf("Argo CD UI and API: http://localhost:%d  (user admin, password %s)", p, argoPassword))
		case t == fmt.Sprintf("%s:%d", GitHost, GitPort):
			out = append(out, fmt.Sprintf("GitOps repository: http://localhost:%d/%s.git  (user %s, password %s)", p, RepoName, GitUser, gitPassword))
		case p == RegistryPort:
			out = append(out, fmt.Sprintf("OCI registry: localhost:%d (plain HTTP)", p))
		case p == MailHTTPPort:
			out = append(out, fmt.Sprintf("Mailpit (the mail sent): http://localhost:%d  (web UI; JSON API at /api/v1/messages)", p))
		case p == SMTPPort:
			out = append(out, fmt.Sprintf("SMTP: localhost:%d (no TLS, no login)", p))
		default:
			out = append(out, fmt.Sprintf("localhost:%d → %s", p, t))
		}
	}
	return out
}
