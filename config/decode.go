package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// decoder walks the YAML syntax tree into the Config structs itself, rather
// than through yaml.Unmarshal, because the library stops at the first error
// and we want every error, each with the line it came from.
type decoder struct {
	file    string
	anchors map[string]ast.Node
	seen    map[string]pos  // path of every key and list item in the file → where
	bad     map[string]bool // paths whose value could not be decoded
	errs    Errors

	// Aliases can make a small file describe a huge or endless tree
	// (`a: &a {<<: *a}`); depth and work bound what one file can cost.
	depth, work int
}

const (
	maxDepth = 64
	maxWork  = 200_000 // nodes visited; a real config is a few hundred
)

// pos is a place in the file.
type pos struct{ line, col int }

func newDecoder(file string) *decoder {
	return &decoder{
		file:    file,
		anchors: map[string]ast.Node{},
		seen:    map[string]pos{},
		bad:     map[string]bool{},
	}
}

// errorf records a problem at path. Problems under a path that already failed
// to decode are dropped: they would only repeat the first error.
func (d *decoder) errorf(at pos, path, format string, args ...any) {
	if d.under(path, d.bad) {
		return
	}
	d.errs = append(d.errs, Error{File: d.file, Line: at.line, Col: at.col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// fail records a decode error and marks path bad so validation skips it.
func (d *decoder) fail(at pos, path, format string, args ...any) {
	d.errorf(at, path, format, args...)
	d.bad[path] = true
}

// under reports whether path or one of its ancestors is in set.
func (d *decoder) under(path string, set map[string]bool) bool {
	for p := path; ; {
		if set[p] {
			return true
		}
		parent, ok := parentPath(p)
		if !ok {
			return false
		}
		p = parent
	}
}

// at finds where path was written, or failing that its nearest written
// ancestor, so errors about defaulted values point at the enclosing block.
func (d *decoder) at(path string) pos {
	for p := path; ; {
		if at, ok := d.seen[p]; ok {
			return at
		}
		parent, ok := parentPath(p)
		if !ok {
			return pos{line: 1, col: 1}
		}
		p = parent
	}
}

// present reports whether path was written in the file.
func (d *decoder) present(path string) bool {
	_, ok := d.seen[path]
	return ok
}

func parentPath(p string) (string, bool) {
	if p == "" {
		return "", false
	}
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return "", true
	}
	return p[:i], true
}

func childPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// decodeFile parses data and decodes it into c. It reports false when the
// YAML itself is broken, in which case nothing further can be checked.
func (d *decoder) decodeFile(data []byte, c *Config) bool {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		d.syntaxError(err)
		return false
	}
	var docs []ast.Node
	for _, doc := range f.Docs {
		if doc.Body != nil {
			docs = append(docs, doc.Body)
		}
	}
	if len(docs) == 0 {
		return true // an empty file: validation says what is missing
	}
	if len(docs) > 1 {
		d.errorf(nodePos(docs[1]), "", "want one YAML document, found %d", len(docs))
	}
	for _, n := range docs {
		ast.Walk(anchorCollector(d.anchors), n)
	}
	d.decode(docs[0], reflect.ValueOf(c).Elem(), "", pos{line: 1, col: 1})
	return true
}

func (d *decoder) syntaxError(err error) {
	at := pos{}
	msg := err.Error()
	var ye yaml.Error
	if errors.As(err, &ye) {
		msg = ye.GetMessage()
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			at = pos{line: tk.Position.Line, col: tk.Position.Column}
		}
	}
	d.errs = append(d.errs, Error{File: d.file, Line: at.line, Col: at.col, Msg: "invalid YAML: " + msg})
}

// anchorCollector records every &anchor so *aliases can be resolved.
type anchorCollector map[string]ast.Node

func (a anchorCollector) Visit(n ast.Node) ast.Visitor {
	if an, ok := n.(*ast.AnchorNode); ok && an.Name != nil {
		a[an.Name.GetToken().Value] = an.Value
	}
	return a
}

// resolve looks through anchors, aliases and tags to the value node. forceString
// is set by an explicit !!str tag.
func (d *decoder) resolve(n ast.Node) (node ast.Node, forceString bool) {
	for range 100 { // bounded: an alias cycle must not hang the loader
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			target, ok := d.anchors[v.Value.GetToken().Value]
			if !ok {
				return n, forceString
			}
			n = target
		case *ast.TagNode:
			if v.Start != nil && v.Start.Value == "!!str" {
				forceString = true
			}
			n = v.Value
		case *ast.MappingKeyNode:
			n = v.Value
		default:
			return n, forceString
		}
	}
	return n, forceString
}

// nodePos is where a node starts; for a mapping, its first key.
func nodePos(n ast.Node) pos {
	switch v := n.(type) {
	case *ast.MappingNode:
		if len(v.Values) > 0 {
			return nodePos(v.Values[0])
		}
	case *ast.MappingValueNode:
		return nodePos(v.Key)
	}
	if n == nil {
		return pos{}
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return pos{}
	}
	return pos{line: tk.Position.Line, col: tk.Position.Column}
}

var durationType = reflect.TypeFor[time.Duration]()

// decode sets v from node n found at path (written at at).
func (d *decoder) decode(n ast.Node, v reflect.Value, path string, at pos) {
	if !d.enter(at, path) {
		return
	}
	defer d.leave()
	n, forceString := d.resolve(n)
	if n == nil {
		return
	}
	if _, ok := n.(*ast.NullNode); ok {
		// An empty value keeps the default; an empty block (`analysis:`)
		// still switches the block on.
		if v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct && v.IsNil() {
			v.Set(newElem(v.Type()))
		}
		return
	}
	if v.Type() == durationType {
		d.decodeDuration(n, v, path, at)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(newElem(v.Type())) // with its defaults, if it has them
		}
		d.decode(n, v.Elem(), path, at)
	case reflect.Struct:
		d.decodeStruct(n, v, path, at)
	case reflect.Map:
		d.decodeMap(n, v, path, at)
	case reflect.Slice:
		d.decodeSlice(n, v, path, at)
	case reflect.String:
		d.decodeString(n, v, path, at, forceString, false)
	case reflect.Int:
		d.decodeInt(n, v, path, at)
	case reflect.Float64:
		d.decodeFloat(n, v, path, at)
	case reflect.Bool:
		if b, ok := n.(*ast.BoolNode); ok {
			v.SetBool(b.Value)
			return
		}
		d.fail(at, path, "want true or false, got %s", describe(n))
	default:
		panic(fmt.Sprintf("config: no decoder for %s", v.Type()))
	}
}

// enter counts one more level and node of decoding; false means the file
// is too deep or too big, which has been reported.
func (d *decoder) enter(at pos, path string) bool {
	d.depth++
	d.work++
	if d.depth > maxDepth || d.work > maxWork {
		d.depth--
		if !d.bad[""] {
			d.fail(at, path, "aliases or merge keys nest too deeply or refer to themselves")
			d.bad[""] = true // stop here: everything else would be noise
		}
		return false
	}
	return true
}

func (d *decoder) leave() { d.depth-- }

// entries lists a mapping's key/value pairs with `<<` merge keys expanded.
// Keys written in the mapping win over merged ones, as YAML specifies.
func (d *decoder) entries(n ast.Node, path string) ([]*ast.MappingValueNode, bool) {
	if !d.enter(nodePos(n), path) {
		return nil, true
	}
	defer d.leave()
	var values []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		values = m.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{m}
	default:
		return nil, false
	}
	var own, merged []*ast.MappingValueNode
	for _, mv := range values {
		if _, ok := mv.Key.(*ast.MergeKeyNode); !ok {
			own = append(own, mv)
			continue
		}
		src, _ := d.resolve(mv.Value)
		sources := []ast.Node{src}
		if seq, ok := src.(*ast.SequenceNode); ok {
			sources = sources[:0]
			for _, item := range seq.Values {
				r, _ := d.resolve(item)
				sources = append(sources, r)
			}
		}
		for _, s := range sources {
			ents, ok := d.entries(s, path)
			if !ok {
				d.fail(nodePos(mv), childPath(path, "<<"), "want a mapping or a list of mappings to merge, got %s", describe(s))
				continue
			}
			merged = append(merged, ents...)
		}
	}
	have := map[string]bool{}
	for _, mv := range own {
		have[d.keyText(mv)] = true
	}
	for _, mv := range merged {
		if k := d.keyText(mv); !have[k] {
			have[k] = true
			own = append(own, mv)
		}
	}
	return own, true
}

func (d *decoder) keyText(mv *ast.MappingValueNode) string {
	k, _ := d.resolve(mv.Key)
	if s, ok := k.(*ast.StringNode); ok {
		return s.Value
	}
	if k == nil || k.GetToken() == nil {
		return ""
	}
	return k.GetToken().Value
}

// decodeStruct sets the fields of v named by the mapping's keys. Keys the
// struct does not have are errors, except x- keys at the top level, which are
// kept free for anchors (as in docker compose).
func (d *decoder) decodeStruct(n ast.Node, v reflect.Value, path string, at pos) {
	ents, ok := d.entries(n, path)
	if !ok {
		d.fail(at, path, "want a mapping, got %s", describe(n))
		return
	}
	fields, names := structFields(v.Type())
	for _, mv := range ents {
		key := d.keyText(mv)
		kat := nodePos(mv.Key)
		p := childPath(path, key)
		i, ok := fields[key]
		if !ok {
			if path == "" && strings.HasPrefix(key, "x-") {
				continue
			}
			d.fail(kat, p, "unknown key%s", suggest(key, names))
			continue
		}
		d.seen[p] = kat
		d.decode(mv.Value, v.Field(i), p, kat)
	}
}

// structFields maps yaml key → field index, and lists the keys in order.
func structFields(t reflect.Type) (map[string]int, []string) {
	fields := map[string]int{}
	var names []string
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = i
		names = append(names, name)
	}
	return fields, names
}

// decodeMap replaces v with the mapping's entries. New struct elements start
// from their defaults.
func (d *decoder) decodeMap(n ast.Node, v reflect.Value, path string, at pos) {
	ents, ok := d.entries(n, path)
	if !ok {
		d.fail(at, path, "want a mapping, got %s", describe(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(ents))
	elemType := v.Type().Elem()
	for _, mv := range ents {
		key := d.keyText(mv)
		kat := nodePos(mv.Key)
		p := childPath(path, key)
		d.seen[p] = kat
		elem := newElem(elemType)
		if elemType.Kind() == reflect.String {
			d.decodeLenientString(mv.Value, elem, p, kat)
		} else {
			d.decode(mv.Value, elem, p, kat)
		}
		m.SetMapIndex(reflect.ValueOf(key), elem)
	}
	v.Set(m)
}

// decodeSlice replaces v with the list's items.
func (d *decoder) decodeSlice(n ast.Node, v reflect.Value, path string, at pos) {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.fail(at, path, "want a list, got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), 0, len(seq.Values))
	elemType := v.Type().Elem()
	for i, item := range seq.Values {
		p := indexPath(path, i)
		iat := nodePos(item)
		d.seen[p] = iat
		elem := newElem(elemType)
		if elemType.Kind() == reflect.String {
			d.decodeLenientString(item, elem, p, iat)
		} else {
			d.decode(item, elem, p, iat)
		}
		s = reflect.Append(s, elem)
	}
	v.Set(s)
}

// defaulter is implemented by elements of maps that start from defaults.
type defaulter interface{ setDefaults() }

// newElem makes a settable zero value of t, with defaults if t has them.
func newElem(t reflect.Type) reflect.Value {
	e := reflect.New(t).Elem()
	target := e.Addr()
	if t.Kind() == reflect.Pointer {
		e.Set(reflect.New(t.Elem()))
		target = e
	}
	if df, ok := target.Interface().(defaulter); ok {
		df.setDefaults()
	}
	return e
}

// decodeString sets a string field. Numbers are taken as written (so
// registry_id: 123456789012 works unquoted); booleans are refused because
// `no` and `true` are rarely meant as text.
func (d *decoder) decodeString(n ast.Node, v reflect.Value, path string, at pos, forceString, lenient bool) {
	switch s := n.(type) {
	case *ast.StringNode:
		v.SetString(s.Value)
		return
	case *ast.LiteralNode:
		v.SetString(s.Value.Value)
		return
	case *ast.IntegerNode, *ast.FloatNode:
		v.SetString(n.GetToken().Value)
		return
	case *ast.BoolNode:
		if forceString || lenient {
			v.SetString(n.GetToken().Value)
			return
		}
	}
	if forceString {
		if _, ok := n.(ast.ScalarNode); ok {
			v.SetString(n.GetToken().Value)
			return
		}
	}
	d.fail(at, path, "want a string, got %s", describe(n))
}

// decodeLenientString is for env values and command words, where any scalar
// is meant as its text (FLAG: true, command: [sleep, 10]).
func (d *decoder) decodeLenientString(n ast.Node, v reflect.Value, path string, at pos) {
	r, forceString := d.resolve(n)
	if _, ok := r.(*ast.NullNode); ok || r == nil {
		return
	}
	d.decodeString(r, v, path, at, forceString, true)
}

func (d *decoder) decodeInt(n ast.Node, v reflect.Value, path string, at pos) {
	in, ok := n.(*ast.IntegerNode)
	if !ok {
		d.fail(at, path, "want an integer, got %s", describe(n))
		return
	}
	var i int64
	switch x := in.Value.(type) {
	case int64:
		i = x
	case uint64:
		if x > math.MaxInt64 {
			d.fail(at, path, "integer %s is too large", in.Token.Value)
			return
		}
		i = int64(x)
	}
	if i > math.MaxInt32 || i < math.MinInt32 {
		d.fail(at, path, "integer %s is too large", in.Token.Value)
		return
	}
	v.SetInt(i)
}

func (d *decoder) decodeFloat(n ast.Node, v reflect.Value, path string, at pos) {
	switch x := n.(type) {
	case *ast.FloatNode:
		v.SetFloat(x.Value)
	case *ast.IntegerNode:
		f, err := strconv.ParseFloat(x.Token.Value, 64)
		if err != nil {
			d.fail(at, path, "want a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		d.fail(at, path, "want a number, got %s", describe(n))
	}
}

// decodeDuration reads Go duration syntax (30s, 1m30s, 1h). A bare 0 is
// allowed; other bare numbers are refused because the unit is ambiguous.
func (d *decoder) decodeDuration(n ast.Node, v reflect.Value, path string, at pos) {
	var text string
	switch x := n.(type) {
	case *ast.StringNode:
		text = x.Value
	case *ast.IntegerNode, *ast.FloatNode:
		text = x.GetToken().Value
		if text != "0" {
			d.fail(at, path, "want a duration with a unit such as 30s or 1m30s, got %s", describe(n))
			return
		}
	default:
		d.fail(at, path, "want a duration such as 30s or 1m30s, got %s", describe(n))
		return
	}
	dur, err := time.ParseDuration(strings.TrimSpace(text))
	if err != nil {
		d.fail(at, path, "want a duration such as 30s or 1m30s, got %q", text)
		return
	}
	if dur < 0 {
		d.fail(at, path, "must not be negative, got %s", text)
		return
	}
	v.SetInt(int64(dur))
}

// describe names a node's type and value for "want X, got Y" messages.
func describe(n ast.Node) string {
	switch x := n.(type) {
	case *ast.StringNode:
		return fmt.Sprintf("string %q", x.Value)
	case *ast.LiteralNode:
		return fmt.Sprintf("string %q", x.Value.Value)
	case *ast.IntegerNode:
		return "integer " + x.Token.Value
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "number " + n.GetToken().Value
	case *ast.BoolNode:
		return "boolean " + x.Token.Value
	case *ast.NullNode:
		return "nothing"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.AliasNode:
		return "an unknown alias *" + x.Value.GetToken().Value
	}
	if n != nil && n.GetToken() != nil && n.GetToken().Type != token.UnknownType {
		return fmt.Sprintf("%q", n.GetToken().Value)
	}
	return "something else"
}

// suggest turns an unknown key into a hint: the nearest known key when it is
// probably a typo, otherwise the list of keys allowed here.
func suggest(key string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if dist := editDistance(key, n); dist < bestDist {
			best, bestDist = n, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return "; want one of: " + strings.Join(names, ", ")
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
