//! Hands a value from an inner layer to the layers around it that are running
//! it on this thread: the one mechanism behind
//! [`correlation::announce`](crate::correlation::announce)/[`listen`](crate::correlation::listen),
//! [`BodyTimeoutSignal::offer`](crate::BodyTimeoutSignal::offer)/[`listen`](crate::BodyTimeoutSignal::listen)
//! and [`drop_timed_out`](crate::body::drop_timed_out).
//!
//! A layer [`listen`]s around a synchronous step of the layers inside it (a
//! `Service::call`, a `poll_frame`); a layer inside [`offer`]s a value during
//! that step. The listener gets the value offered last during its own step,
//! and passes it on to the listener around it, if any: every listener hears
//! what its step offered, through any number of listeners between, and
//! nothing offered outside its step. Kinds do not mix: each [`Relayed`] type
//! has its own slot.
//!
//! The swap underneath, [`during`] (a thread-local holds a value while a
//! closure runs and gets its outer value back afterwards, also on a panic),
//! also serves the one hand-over the other way, inward:
//! [`drop_timed_out`](crate::body::drop_timed_out) tells the bodies it drops
//! why.
//!
//! Written by hand, on a thread-local, because the value must reach layers
//! that hold no handle to the inner one (the inner layer cannot know who is
//! outside) without allocating anything per request when nobody listens or
//! nothing is offered: a listen or an offer is a thread-local `Cell` swap.
//! `scoped-tls` hands a borrow inward only, and panics once the thread's
//! locals are gone; this never panics.
//!
//! A generic `static` per type does not exist in Rust, so each kind names its
//! slot through a trait ([`Relayed::slot`], a `thread_local!` declared inside
//! the impl's function): one code path for every kind, one slot per kind,
//! and adding a kind takes no change here (a struct with one field per kind
//! would make this module know every kind).

use std::cell::Cell;
use std::thread::LocalKey;

/// A kind's slot: `None` while nobody listens, `Some(None)` while a listener
/// has heard nothing yet, `Some(Some(value))` once a value was offered to it.
pub(crate) type Slot<T> = Cell<Option<Option<T>>>;

/// A type that inner layers [`offer`] to the layers listening around them.
pub(crate) trait Relayed: Clone + 'static {
    /// This type's thread-local [`Slot`], declared inside the function:
    /// `thread_local!(static SLOT: Slot<MyType> = const { Slot::new(None) });`
    /// then `&SLOT`.
    fn slot() -> &'static LocalKey<Slot<Self>>;
}

/// Hands the value `make` returns to the nearest listener around this call on
/// this thread, replacing what an earlier offer handed it. `make` runs only
/// if someone listens: with nobody listening an offer costs a thread-local
/// check.
pub(crate) fn offer<T: Relayed>(make: impl FnOnce() -> T) {
    let _ = T::slot().try_with(|slot| {
        if let Some(earlier) = slot.take() {
            // Dropped before `make` runs, so that `make` may offer again.
            drop(earlier);
            slot.set(Some(Some(make())));
        }
    });
}

/// Runs `step` (an inner service's `call`, a poll of an inner body) and
/// returns what it returned with the value of type `T` offered meanwhile
/// (the last one), which the listener around this one, if any, hears too.
pub(crate) fn listen<T: Relayed, R>(step: impl FnOnce() -> R) -> (R, Option<T>) {
    let mut heard = None;
    let result = listen_into(&mut heard, step);
    (result, heard)
}

/// [`listen`], with the value offered written to `heard` (`None` when none
/// was; left as it was, and nothing passed on, when `step` panics) and
/// `step`'s result returned as it is: a large result (an inner
/// service's future) is not moved into a pair and out of it again. What
/// follows `step` is done by guards as they drop, so that `step`'s result is
/// written straight where the caller wants it.
pub(crate) fn listen_into<T: Relayed, R>(heard: &mut Option<T>, step: impl FnOnce() -> R) -> R {
    /// Hands what the step heard to `heard`, and on to the listener around,
    /// once the step has returned (not when it panics).
    struct Pass<'a, T: Relayed> {
        end: Option<Option<T>>,
        returned: bool,
        heard: &'a mut Option<T>,
    }
    impl<T: Relayed> Drop for Pass<'_, T> {
        fn drop(&mut self) {
            if !self.returned {
                return;
            }
            *self.heard = self.end.take().flatten();
            if let Some(value) = self.heard.as_ref() {
                offer(|| value.clone());
            }
        }
    }
    let mut pass = Pass {
        end: None,
        returned: false,
        heard,
    };
    let returned = &mut pass.returned;
    during_into(T::slot(), Some(None), &mut pass.end, || {
        let result = step();
        *returned = true;
        result
    })
}

/// Puts `value` in the thread-local `key` while `f` runs, then puts back what
/// was there before, also when `f` panics. Returns what `f` returned and what
/// `key` held when it ended. Once the thread's locals are being destroyed,
/// `f` runs alone and `S::default()` stands for the end state.
pub(crate) fn during<S: Default + 'static, R>(
    key: &'static LocalKey<Cell<S>>,
    value: S,
    f: impl FnOnce() -> R,
) -> (R, S) {
    let mut end = S::default();
    let result = during_into(key, value, &mut end, f);
    (result, end)
}

/// [`during`], with the end state written to `end` (also when `f` panics;
/// left as it is once the thread's locals are being destroyed) and `f`'s result returned as it is
/// (see [`listen_into`]).
pub(crate) fn during_into<S: 'static, R>(
    key: &'static LocalKey<Cell<S>>,
    value: S,
    end: &mut S,
    f: impl FnOnce() -> R,
) -> R {
    /// Puts the outer state back when dropped, and what `key` held then in
    /// `end`.
    struct Restore<'a, S: 'static> {
        key: &'static LocalKey<Cell<S>>,
        outer: Option<S>,
        end: &'a mut S,
    }
    impl<S: 'static> Drop for Restore<'_, S> {
        fn drop(&mut self) {
            if let Some(outer) = self.outer.take()
                && let Ok(state) = self.key.try_with(|cell| cell.replace(outer))
            {
                *self.end = state;
            }
        }
    }
    let _restore = Restore {
        key,
        outer: key.try_with(|cell| cell.replace(value)).ok(),
        end,
    };
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct A(u32);

    #[derive(Clone, Debug, PartialEq)]
    struct B(&'static str);

    impl Relayed for A {
        fn slot() -> &'static LocalKey<Slot<Self>> {
            thread_local!(static SLOT: Slot<A> = const { Slot::new(None) });
            &SLOT
        }
    }

    impl Relayed for B {
        fn slot() -> &'static LocalKey<Slot<Self>> {
            thread_local!(static SLOT: Slot<B> = const { Slot::new(None) });
            &SLOT
        }
    }

    #[test]
    fn a_listener_hears_the_last_value_offered_in_its_step_only() {
        offer(|| A(1));
        let ((), heard) = listen::<A, _>(|| {
            offer(|| A(2));
            offer(|| A(3));
        });
        assert_eq!(heard, Some(A(3)));
        // Nothing is kept for later, and nothing is made for nobody.
        offer(|| -> A { panic!("made with nobody listening") });
        let ((), heard) = listen::<A, _>(|| ());
        assert_eq!(heard, None);
    }

    #[test]
    fn nested_listeners_each_hear_their_own_step() {
        let (inner, outer) = listen::<A, _>(|| {
            offer(|| A(1));
            // Not heard by the listener inside, which starts after it.
            let ((), inner) = listen::<A, _>(|| offer(|| A(2)));
            // A sibling step with no offer hears nothing, and keeps the
            // outer listener's value.
            let ((), sibling) = listen::<A, _>(|| ());
            assert_eq!(sibling, None);
            inner
        });
        assert_eq!(inner, Some(A(2)));
        // The outer listener hears what its step offered last, through the
        // listener between.
        assert_eq!(outer, Some(A(2)));

        let (inner, outer) = listen::<A, _>(|| {
            let ((), inner) = listen::<A, _>(|| ());
            offer(|| A(5));
            inner
        });
        assert_eq!((inner, outer), (None, Some(A(5))));
    }

    #[test]
    fn a_panic_in_the_step_restores_the_outer_state() {
        let ((), outer) = listen::<A, _>(|| {
            offer(|| A(1));
            let panicked = std::panic::catch_unwind(|| {
                listen::<A, _>(|| {
                    offer(|| A(2));
                    panic!("inner step");
                })
            });
            assert!(panicked.is_err());
            // The outer listener still listens, with what it had heard.
        });
        assert_eq!(outer, Some(A(1)));

        // Outside any listener: nobody listens afterwards.
        let panicked = std::panic::catch_unwind(|| listen::<A, ()>(|| panic!("step")));
        assert!(panicked.is_err());
        offer(|| -> A { panic!("made with nobody listening") });
    }

    #[test]
    fn kinds_do_not_mix() {
        let ((((), b), a_inner), a) = listen::<A, _>(|| {
            listen::<A, _>(|| {
                listen::<B, _>(|| {
                    offer(|| A(7));
                    offer(|| B("b"));
                })
            })
        });
        assert_eq!(b, Some(B("b")));
        assert_eq!((a_inner, a), (Some(A(7)), Some(A(7))));
        // A listener of one kind hears nothing of another.
        let ((), heard) = listen::<B, _>(|| offer(|| A(1)));
        assert_eq!(heard, None);
    }

    #[test]
    fn during_sets_a_value_for_the_call_only() {
        thread_local!(static FLAG: Cell<bool> = const { Cell::new(false) });
        let (seen, end) = during(&FLAG, true, || FLAG.with(Cell::get));
        assert!(seen && end);
        assert!(!FLAG.with(Cell::get));
        let panicked = std::panic::catch_unwind(|| during(&FLAG, true, || panic!("drop")));
        assert!(panicked.is_err());
        assert!(!FLAG.with(Cell::get));
    }
}
