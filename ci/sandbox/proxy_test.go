package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// up's forwarder relays both ways, and says what each port is.
func TestForwardRelaysConnections(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				fmt.Fprintf(c, "echo: %s", line)
			}()
		}
	}()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = Forward(ctx, "127.0.0.1", map[int]string{port: echo.Addr().String()}) }()
	var c net.Conn
	for i := 0; i < 50; i++ {
		if c, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintln(c, "hello")
	got, _ := bufio.NewReader(c).ReadString('\n')
	if got != "echo: hello\n" {
		t.Errorf("relayed %q", got)
	}
	where := strings.Join(Where(map[int]string{8080: "argocd:8080", 3000: "git:8080", 8025: "mail:8025"}, "gitpw", "argopw"), "\n")
	for _, want := range []string{"http://localhost:8080  (user admin, password argopw)", "http://localhost:3000/wanderlust.git", "http://localhost:8025"} {
		if !strings.Contains(where, want) {
			t.Errorf("where lacks %q:\n%s", want, where)
		}
	}
}
