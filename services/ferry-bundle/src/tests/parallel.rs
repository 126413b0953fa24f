//! The ordered parallel map: results in submission order, errors in their place, a
//! panicking item an error rather than a hang, queued items taken by the calling thread.

use std::time::Duration;

use crate::parallel::{helpers_for, run};

use super::*;

/// Squares `item`, after a pause that makes later items finish before earlier ones.
fn slow_square(item: &mut u64) -> Result<(), BundleError> {
    std::thread::sleep(Duration::from_millis((10 - *item % 10) * 2));
    if *item == 13 {
        return Err(BundleError::Malformed("thirteen".to_owned()));
    }
    *item *= *item;
    Ok(())
}

#[test]
fn results_come_back_in_submission_order() {
    for helpers in [0, 1, 3] {
        let got = run(helpers, 4, &slow_square, |ordered| {
            let mut got = Vec::new();
            for item in 0..12u64 {
                // Keep at most four in flight, as the callers do with their buffers.
                if ordered.pending() == 4 {
                    got.push(ordered.next().unwrap()?);
                }
                ordered.submit(item)?;
            }
            while let Some(done) = ordered.next() {
                got.push(done?);
            }
            assert_eq!(ordered.pending(), 0);
            Ok(got)
        })
        .unwrap();
        let squares: Vec<u64> = (0..12u64).map(|i| i * i).collect();
        assert_eq!(got, squares, "{helpers} helpers");
    }
}

#[test]
fn an_error_arrives_in_its_place() {
    for helpers in [0, 2] {
        let mut delivered = Vec::new();
        let err = run(helpers, 8, &slow_square, |ordered| {
            for item in 10..18u64 {
                ordered.submit(item)?;
            }
            while let Some(done) = ordered.next() {
                delivered.push(done?);
            }
            Ok(())
        })
        .unwrap_err();
        assert!(err.to_string().contains("thirteen"), "{err}");
        // Everything before the failed item, nothing after it.
        assert_eq!(delivered, vec![100, 121, 144], "{helpers} helpers");
    }
}

#[test]
fn a_panicking_item_is_an_error_not_a_hang() {
    let work = |item: &mut u64| -> Result<(), BundleError> {
        assert_ne!(*item, 2, "item 2 panics");
        Ok(())
    };
    let err = run(2, 4, &work, |ordered| {
        for item in 0..4u64 {
            ordered.submit(item)?;
        }
        while let Some(done) = ordered.next() {
            done?;
        }
        Ok(())
    })
    .unwrap_err();
    assert_eq!(err.kind(), "io", "{err}");
}

#[test]
fn the_calling_thread_takes_queued_items_instead_of_waiting() {
    let caller = std::thread::current().id();
    // On a helper an item takes long, so that the others wait in the queue meanwhile.
    let work = |item: &mut (u64, bool)| -> Result<(), BundleError> {
        item.1 = std::thread::current().id() == caller;
        if !item.1 {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    };
    let done = run(1, 8, &work, |ordered| {
        for item in 0..6u64 {
            ordered.submit((item, false))?;
        }
        let mut done = Vec::new();
        while let Some(item) = ordered.next() {
            done.push(item?);
        }
        Ok(done)
    })
    .unwrap();
    assert_eq!(
        done.iter().map(|d| d.0).collect::<Vec<_>>(),
        (0..6).collect::<Vec<_>>()
    );
    assert!(
        done.iter().any(|d| d.1),
        "every item waited for the helper: {done:?}"
    );
}

#[test]
fn taken_in_any_order_a_slow_oldest_item_holds_up_none_of_the_others() {
    let caller = std::thread::current().id();
    // Item 0 is slow wherever it runs; the rest are quick.
    let work = |item: &mut (u64, bool)| -> Result<(), BundleError> {
        item.1 = std::thread::current().id() == caller;
        if item.0 == 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(())
    };
    for helpers in [0, 1, 2] {
        let done = run(helpers, 8, &work, |ordered| {
            ordered.submit((0, false))?;
            // Time for a helper to take item 0 before the others are queued.
            std::thread::sleep(Duration::from_millis(50));
            for item in 1..6u64 {
                ordered.submit((item, false))?;
            }
            let mut done = Vec::new();
            while let Some(item) = ordered.next_any() {
                done.push(item?);
            }
            assert_eq!(ordered.pending(), 0);
            Ok(done)
        })
        .unwrap();
        let mut items: Vec<u64> = done.iter().map(|d| d.0).collect();
        if helpers > 0 {
            // A helper took item 0 first: the caller had the others done before it.
            assert_eq!(done.last().unwrap().0, 0, "{helpers} helpers: {done:?}");
        }
        items.sort_unstable();
        assert_eq!(items, (0..6).collect::<Vec<_>>(), "{helpers} helpers");
    }
}

#[test]
fn few_items_get_no_helpers() {
    assert_eq!(helpers_for(0), 0);
    assert_eq!(helpers_for(3), 0);
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(helpers_for(1000), cores.saturating_sub(1).clamp(1, 4));
}

#[test]
fn sealing_on_helpers_gives_the_bytes_of_sealing_inline_and_age_decrypts_them() {
    // The same plaintext under the same age header and key: encrypted inline, by helpers
    // handing segments back in order, and by helpers writing their segments at their
    // offsets in the file. Chunks are independent (nonce = counter || last flag), so the
    // three bundles must be the same bytes, and a standard age file.
    use crate::write::Sealer;
    let p = pair();
    let params = params();
    let recipient = crate::keys::recipient_point(&p.high.public().recipient).unwrap();
    let (age_header, key) = crate::age_v1::new_header(&recipient).unwrap();
    // 5 segments of 16 chunks and a short last chunk.
    let plain = noise(5 * 16 * crate::age_v1::CHUNK_LEN + 1234, 11);
    let seal_with = |helpers: usize, positioned: bool, defer_writes: bool| {
        let sealer = Sealer {
            age_header: &age_header,
            key: &key,
            helpers: Some(helpers),
            defer_writes,
        };
        let len = plain.len() as u64;
        if positioned {
            let mut file = tempfile::tempfile().unwrap();
            let clone = file.try_clone().unwrap();
            sealer
                .seal(&mut file, Some(&clone), &p.low, &params, len, |w| {
                    w.write_all(&plain)
                })
                .unwrap();
            file.seek(SeekFrom::Start(0)).unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
            bytes
        } else {
            let mut out = Cursor::new(Vec::new());
            sealer
                .seal(&mut out, None, &p.low, &params, len, |w| {
                    w.write_all(&plain)
                })
                .unwrap();
            out.into_inner()
        }
    };
    let seal = |helpers, positioned| seal_with(helpers, positioned, false);
    let inline = seal(0, false);
    assert_eq!(seal(2, false), inline, "helpers, written in order");
    assert_eq!(seal(2, true), inline, "helpers, positioned writes");
    assert_eq!(seal(4, true), inline, "four helpers, positioned writes");
    assert_eq!(
        seal_with(2, true, true),
        inline,
        "helpers leaving every write to the calling thread"
    );

    let tmp = tempfile::tempdir().unwrap();
    p.high.save(&tmp.path().join("keys")).unwrap();
    let decrypted = age_decrypt(tmp.path(), &inline);
    assert!(
        decrypted.status.success(),
        "{}",
        String::from_utf8_lossy(&decrypted.stderr)
    );
    assert!(decrypted.stdout == plain, "age -d gave other bytes");
}
