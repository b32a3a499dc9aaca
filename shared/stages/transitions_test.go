package stages

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// expect is written out by hand, apart from transitions.go, one row per
// Position, one column per desired stage (Idle, Prep, Upgrade, Rollback). An entry is
// the Action, or "!" followed by the refusal code.
var expect = map[string][4]string{
	//                                 -> Idle                   -> Prep                     -> Upgrade                  -> Rollback
	"Idle/Completed/pre":       {"None", "Prep", "!PrepFirst", "!UpgradeNotStartedOrFinalized"},
	"Idle/Completed/post":      {"None", "Prep", "!PrepFirst", "!UpgradeNotStartedOrFinalized"},
	"Idle/InProgress/pre":      {"None", "!IdleInProgress", "!IdleInProgress", "!IdleInProgress"},
	"Idle/InProgress/post":     {"None", "!IdleInProgress", "!IdleInProgress", "!IdleInProgress"},
	"Idle/Failed/pre":          {"RetryIdle", "!PreviousStageNotSucceeded", "!PrepFirst", "!UpgradeNotStartedOrFinalized"},
	"Idle/Failed/post":         {"RetryIdle", "!PreviousStageNotSucceeded", "!PrepFirst", "!UpgradeNotStartedOrFinalized"},
	"Prep/InProgress/pre":      {"Abort", "None", "!StageInProgress", "!UpgradeNotStartedOrFinalized"},
	"Prep/InProgress/post":     {"Abort", "None", "!StageInProgress", "!UpgradeNotStartedOrFinalized"},
	"Prep/Failed/pre":          {"Abort", "ResumePrep", "!PreviousStageNotSucceeded", "!UpgradeNotStartedOrFinalized"},
	"Prep/Failed/post":         {"Abort", "ResumePrep", "!PreviousStageNotSucceeded", "!UpgradeNotStartedOrFinalized"},
	"Prep/Completed/pre":       {"Abort", "None", "Upgrade", "!UpgradeNotStartedOrFinalized"},
	"Prep/Completed/post":      {"Abort", "None", "Upgrade", "!UpgradeNotStartedOrFinalized"},
	"Upgrade/InProgress/pre":   {"Abort", "!StageInProgress", "None", "!NotAfterPivot"},
	"Upgrade/InProgress/post":  {"!RollbackFirst", "!StageInProgress", "None", "Rollback"},
	"Upgrade/Failed/pre":       {"Abort", "!PreviousStageNotSucceeded", "None", "!NotAfterPivot"},
	"Upgrade/Failed/post":      {"!RollbackFirst", "!PreviousStageNotSucceeded", "None", "Rollback"},
	"Upgrade/Completed/pre":    {"Abort", "!PreviousStageNotSucceeded", "None", "!NotAfterPivot"},
	"Upgrade/Completed/post":   {"Finalize", "!PreviousStageNotSucceeded", "None", "Rollback"},
	"Rollback/InProgress/pre":  {"!RollbackInProgress", "!RollbackInProgress", "!RollbackInProgress", "None"},
	"Rollback/InProgress/post": {"!RollbackInProgress", "!RollbackInProgress", "!RollbackInProgress", "None"},
	"Rollback/Failed/pre":      {"!RollbackFirst", "!RollbackFirst", "!RollbackFirst", "RetryRollback"},
	"Rollback/Failed/post":     {"!RollbackFirst", "!RollbackFirst", "!RollbackFirst", "RetryRollback"},
	"Rollback/Completed/pre":   {"FinalizeRollback", "!PreviousStageNotSucceeded", "!PreviousStageNotSucceeded", "None"},
	"Rollback/Completed/post":  {"!RollbackInProgress", "!RollbackInProgress", "!RollbackInProgress", "RetryRollback"},
}

func key(p Position) string {
	piv := "pre"
	if p.AfterPivot {
		piv = "post"
	}
	return fmt.Sprintf("%s/%s/%s", p.Stage, p.State, piv)
}

func allPositions() []Position {
	var out []Position
	for _, s := range AllStages {
		for _, st := range AllStates {
			for _, piv := range []bool{false, true} {
				out = append(out, Position{Stage: s, State: st, AfterPivot: piv})
			}
		}
	}
	return out
}

func TestDecideEveryPair(t *testing.T) {
	positions := allPositions()
	if len(positions) != len(expect) {
		t.Fatalf("table has %d rows, there are %d positions", len(expect), len(positions))
	}
	for _, p := range positions {
		row, ok := expect[key(p)]
		if !ok {
			t.Fatalf("no expectation for %s", key(p))
		}
		for i, to := range AllStages {
			t.Run(key(p)+"->"+string(to), func(t *testing.T) {
				want := row[i]
				act, err := Decide(p, to)
				if code, refused := strings.CutPrefix(want, "!"); refused {
					var te *TransitionError
					if !errors.As(err, &te) {
						t.Fatalf("Decide = %q, %v; want refusal %s", act, err, code)
					}
					if !errors.Is(err, ErrInvalidTransition) {
						t.Errorf("error does not wrap ErrInvalidTransition: %v", err)
					}
					if te.Code != code {
						t.Errorf("code = %s (%s), want %s", te.Code, te.Message, code)
					}
					if te.Message == "" {
						t.Error("refusal has no message")
					}
					if slices.Contains(te.Valid, to) {
						t.Errorf("refused %s but lists it as valid: %v", to, te.Valid)
					}
					return
				}
				if err != nil {
					t.Fatalf("Decide: %v; want %s", err, want)
				}
				if string(act) != want {
					t.Errorf("action = %s, want %s", act, want)
				}
				// Every accepted non-noop move is in ValidNextStages, and
				// every ValidNextStages entry is accepted as a real move.
				inValid := slices.Contains(ValidNextStages(p), to)
				if (act != ActionNone) != inValid {
					t.Errorf("action %s but ValidNextStages(%s)=%v", act, p, ValidNextStages(p))
				}
			})
		}
	}
}

func TestValidNextStagesArchitectureTable(t *testing.T) {
	// The valid next stages of each Position, written out by hand.
	cases := []struct {
		p    Position
		want []Stage
	}{
		{Position{Idle, Completed, false}, []Stage{Prep}},
		{Position{Prep, InProgress, false}, []Stage{Idle}},
		{Position{Prep, Failed, false}, []Stage{Idle, Prep}},
		{Position{Prep, Completed, false}, []Stage{Idle, Upgrade}},
		{Position{Upgrade, InProgress, false}, []Stage{Idle}},
		{Position{Upgrade, Failed, false}, []Stage{Idle}},
		{Position{Upgrade, InProgress, true}, []Stage{Rollback}},
		{Position{Upgrade, Failed, true}, []Stage{Rollback}},
		{Position{Upgrade, Completed, true}, []Stage{Idle, Rollback}},
		{Position{Rollback, InProgress, false}, []Stage{}},
		{Position{Rollback, InProgress, true}, []Stage{}},
		{Position{Rollback, Failed, true}, []Stage{Rollback}},
		{Position{Rollback, Completed, false}, []Stage{Idle}},
	}
	for _, c := range cases {
		if got := ValidNextStages(c.p); !slices.Equal(got, c.want) {
			t.Errorf("ValidNextStages(%s) = %v, want %v", c.p, got, c.want)
		}
	}
}

func TestDecideUnknownStage(t *testing.T) {
	for _, p := range allPositions() {
		_, err := Decide(p, Stage("Reboot"))
		var te *TransitionError
		if !errors.As(err, &te) || te.Code != CodeUnknownStage {
			t.Fatalf("Decide(%s, Reboot) = %v, want UnknownStage", p, err)
		}
	}
}

func TestPositionValidate(t *testing.T) {
	if err := (Position{Stage: "Pivot", State: Completed}).Validate(); err == nil {
		t.Error("unknown stage accepted")
	}
	if err := (Position{Stage: Prep, State: "Done"}).Validate(); err == nil {
		t.Error("unknown state accepted")
	}
	if err := IdlePosition.Validate(); err != nil {
		t.Error(err)
	}
}
