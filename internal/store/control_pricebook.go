package store

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caracal-gw/caracal/internal/money"
)

// PriceSpec is one pricebook row: the price of one unit of a resource and
// model.
type PriceSpec struct {
	Resource    string `json:"resource"`
	Model       string `json:"model"`
	Unit        string `json:"unit"` // one of PriceUnits
	PriceMicros int64  `json:"price_micros"`
	Currency    string `json:"currency"`
}

// PriceRow is a stored pricebook row.
type PriceRow struct {
	PriceSpec
	UpdatedAt time.Time `json:"updated_at"`
}

// PriceUnits are the units a price may be set in: per million input,
// output, prompt-cache write and prompt-cache read tokens, and per request.
// A resource and model without a cache_write_mtok or cache_read_mtok price
// charges those tokens at its input_mtok price.
var PriceUnits = []string{"input_mtok", "output_mtok", "cache_write_mtok", "cache_read_mtok", "request"}

// PricebookHeader is the header line an imported CSV file must start with.
var PricebookHeader = []string{"resource", "model", "unit", "price", "currency"}

func (p *PriceSpec) normalise() error {
	if p.Resource == "" || strings.TrimSpace(p.Resource) != p.Resource {
		return fmt.Errorf("invalid resource %q: want a route or provider name", p.Resource)
	}
	if p.Model == "" || strings.TrimSpace(p.Model) != p.Model {
		return fmt.Errorf("invalid model %q: want a model name or *", p.Model)
	}
	if !slices.Contains(PriceUnits, p.Unit) {
		return fmt.Errorf("invalid unit %q: want %s or %s", p.Unit,
			strings.Join(PriceUnits[:len(PriceUnits)-1], ", "), PriceUnits[len(PriceUnits)-1])
	}
	if p.PriceMicros < 0 {
		return fmt.Errorf("the price must not be negative")
	}
	c, err := normCurrency(p.Currency)
	p.Currency = c
	return err
}

// SetPrice creates or changes the price of (resource, model, unit). All
// units of a resource and model share one currency.
func SetPrice(ctx context.Context, q Execer, p PriceSpec) (PriceRow, error) {
	if err := p.normalise(); err != nil {
		return PriceRow{}, err
	}
	var other string
	err := q.QueryRow(ctx, `SELECT currency FROM pricebook WHERE resource = $1 AND model = $2 AND unit <> $3 AND currency <> $4 LIMIT 1`,
		p.Resource, p.Model, p.Unit, p.Currency).Scan(&other)
	if err == nil {
		return PriceRow{}, fmt.Errorf("%s/%s is already priced in %s, not %s", p.Resource, p.Model, other, p.Currency)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return PriceRow{}, fmt.Errorf("cannot read the pricebook: %w", err)
	}
	var r PriceRow
	err = q.QueryRow(ctx, `INSERT INTO pricebook (resource, model, unit, price_micros, currency) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (resource, model, unit) DO UPDATE SET price_micros = EXCLUDED.price_micros,
			currency = EXCLUDED.currency, updated_at = now()
		RETURNING resource, model, unit, price_micros, currency, updated_at`,
		p.Resource, p.Model, p.Unit, p.PriceMicros, p.Currency).Scan(
		&r.Resource, &r.Model, &r.Unit, &r.PriceMicros, &r.Currency, &r.UpdatedAt)
	if err != nil {
		return PriceRow{}, dbError(fmt.Sprintf("set the price of %s/%s %s", p.Resource, p.Model, p.Unit), err)
	}
	return r, nil
}

// ListPrices returns the pricebook ordered by resource, model and unit.
func ListPrices(ctx context.Context, q Querier) ([]PriceRow, error) {
	rows, err := q.Query(ctx, `SELECT resource, model, unit, price_micros, currency, updated_at FROM pricebook
		ORDER BY resource, model, unit`)
	if err != nil {
		return nil, fmt.Errorf("cannot list the pricebook: %w", err)
	}
	return collect(rows, func(row pgx.Row) (PriceRow, error) {
		var r PriceRow
		err := row.Scan(&r.Resource, &r.Model, &r.Unit, &r.PriceMicros, &r.Currency, &r.UpdatedAt)
		return r, err
	}, "list the pricebook")
}

// ImportPrices reads a CSV file (header resource,model,unit,price,currency;
// price a decimal amount such as 0.15) and sets every row in one
// transaction: one bad line imports nothing, and the error names its line.
// It returns how many rows were set.
func ImportPrices(ctx context.Context, db TxBeginner, r io.Reader) (int, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(PricebookHeader)
	cr.TrimLeadingSpace = true
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("line 1: empty file: want the header %s", strings.Join(PricebookHeader, ","))
	}
	if err != nil {
		return 0, fmt.Errorf("line 1: %w", unwrapCSV(err))
	}
	for i, h := range head {
		if strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))) != PricebookHeader[i] {
			return 0, fmt.Errorf("line 1: want the header %s", strings.Join(PricebookHeader, ","))
		}
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("cannot begin the import: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	n := 0
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("line %d: %w", csvLine(err), unwrapCSV(err))
		}
		line, _ := cr.FieldPos(0)
		price, err := money.ParseNonNegative(strings.TrimSpace(rec[3]))
		if err != nil {
			return 0, fmt.Errorf("line %d: %w", line, err)
		}
		p := PriceSpec{Resource: strings.TrimSpace(rec[0]), Model: strings.TrimSpace(rec[1]),
			Unit: strings.TrimSpace(rec[2]), PriceMicros: price, Currency: strings.TrimSpace(rec[4])}
		if _, err := SetPrice(ctx, tx, p); err != nil {
			return 0, fmt.Errorf("line %d: %w", line, err)
		}
		n++
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("cannot commit the import: %w", err)
	}
	return n, nil
}

// csvLine is the line a CSV read error is on (0 when it names none).
func csvLine(err error) int {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Line
	}
	return 0
}

func unwrapCSV(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
