//! API.md §2: parameters (positional and named), `Value` conversions and `Row`.

mod common;

use std::collections::{BTreeMap, HashMap};

use aiolite::{Error, ToValue, Value, ValueType, named_params, params};
use common::on_all_runtimes;

async fn mem() -> aiolite::Connection {
    aiolite::connect(":memory:").await.unwrap()
}

async fn echo(db: &aiolite::Connection, p: impl aiolite::Params, n: usize) -> Vec<Value> {
    let sql = format!("SELECT {}", vec!["?"; n].join(", "));
    db.fetch_one(&sql, p).await.unwrap().unwrap().into_values()
}

#[test]
fn positional_parameter_shapes() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let one = || vec![Value::Integer(1), Value::Text("x".into())];
        assert_eq!(db.fetch_all("SELECT 1", ()).await.unwrap().len(), 1);
        assert_eq!(echo(&db, (1, "x"), 2).await, one());
        assert_eq!(echo(&db, params![1, "x"], 2).await, one());
        assert_eq!(
            echo(&db, [1, 2, 3], 3).await,
            vec![Value::Integer(1), Value::Integer(2), Value::Integer(3)]
        );
        assert_eq!(
            echo(&db, &[4, 5][..], 2).await,
            vec![Value::Integer(4), Value::Integer(5)]
        );
        assert_eq!(echo(&db, one(), 2).await, one());
        assert_eq!(
            echo(&db, vec!["a", "b"], 2).await,
            vec![Value::Text("a".into()), Value::Text("b".into())]
        );
        let dynamic: &[&dyn ToValue] = &[&1_i64, &"x"];
        assert_eq!(echo(&db, dynamic, 2).await, one());
        // params! borrows: the variables stay usable.
        let name = String::from("kept");
        assert_eq!(echo(&db, params![name], 1).await, vec![Value::Text("kept".into())]);
        assert_eq!(name, "kept");
        // Numbered parameters.
        let row = db.fetch_one("SELECT ?2, ?1, ?2", (10, 20)).await.unwrap().unwrap();
        assert_eq!(
            row.into_values(),
            vec![Value::Integer(20), Value::Integer(10), Value::Integer(20)]
        );
    });
}

#[test]
fn tuples_up_to_sixteen_with_mixed_types() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let t16 = (
            1_i8,
            2_i16,
            3_i32,
            4_i64,
            5_u8,
            6_u16,
            7_u32,
            8.5_f64,
            9.5_f32,
            true,
            "eleven",
            String::from("twelve"),
            vec![13_u8],
            Some(14),
            None::<i64>,
            Value::Integer(16),
        );
        let got = echo(&db, t16, 16).await;
        assert_eq!(
            got,
            vec![
                Value::Integer(1),
                Value::Integer(2),
                Value::Integer(3),
                Value::Integer(4),
                Value::Integer(5),
                Value::Integer(6),
                Value::Integer(7),
                Value::Real(8.5),
                Value::Real(9.5),
                Value::Integer(1),
                Value::Text("eleven".into()),
                Value::Text("twelve".into()),
                Value::Blob(vec![13]),
                Value::Integer(14),
                Value::Null,
                Value::Integer(16),
            ]
        );
        assert_eq!(echo(&db, (1,), 1).await, vec![Value::Integer(1)]);
    });
}

#[test]
fn named_parameters_with_every_prefix() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let row = db
            .fetch_one(
                "SELECT :a AS a, @b AS b, $c AS c",
                named_params! { ":a": 1, "@b": "two", "$c": 3.5 },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.into_values(),
            vec![Value::Integer(1), Value::Text("two".into()), Value::Real(3.5)]
        );
        // Order of the given names does not matter; a name used twice binds once.
        let row = db
            .fetch_one("SELECT :x + :y, :x", named_params! { ":y": 10, ":x": 1 })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.into_values(), vec![Value::Integer(11), Value::Integer(1)]);
    });
}

#[test]
fn named_parameters_given_without_prefix() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let row = db
            .fetch_one("SELECT :a, @b, $c", named_params! { "a": 1, "b": 2, "c": 3 })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.into_values(),
            vec![Value::Integer(1), Value::Integer(2), Value::Integer(3)]
        );
    });
}

#[test]
fn named_parameters_from_maps_and_vecs() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let mut map: HashMap<String, Value> = HashMap::new();
        map.insert(":id".into(), Value::Integer(7));
        map.insert("name".into(), Value::Text("x".into()));
        let row = db.fetch_one("SELECT :id, :name", map).await.unwrap().unwrap();
        assert_eq!(row.into_values(), vec![Value::Integer(7), Value::Text("x".into())]);
        let mut bmap: BTreeMap<String, i64> = BTreeMap::new();
        bmap.insert("@p".into(), 5);
        assert_eq!(db.fetch_scalar::<i64>("SELECT @p * 2", bmap).await.unwrap(), Some(10));
        let pairs: Vec<(String, i64)> = vec![(":a".into(), 1), (":b".into(), 2)];
        assert_eq!(db.fetch_scalar::<i64>("SELECT :a - :b", pairs).await.unwrap(), Some(-1));
        let arr = [(":a", 3), (":b", 4)];
        assert_eq!(db.fetch_scalar::<i64>("SELECT :a * :b", arr).await.unwrap(), Some(12));
    });
}

#[test]
fn wrong_parameter_count_is_parameter_count() {
    on_all_runtimes(|| async {
        let db = mem().await;
        db.execute("CREATE TABLE t(a, b)", ()).await.unwrap();
        let err = db.execute("INSERT INTO t VALUES (?, ?)", [1]).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::ParameterCount {
                    expected: 2,
                    given: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.sql(), Some("INSERT INTO t VALUES (?, ?)"));
        let err = db.execute("INSERT INTO t VALUES (?, ?)", [1, 2, 3]).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::ParameterCount {
                    expected: 2,
                    given: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = db.execute("INSERT INTO t VALUES (?, ?)", ()).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::ParameterCount {
                    expected: 2,
                    given: 0,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = db.fetch_all("SELECT 1", [1]).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::ParameterCount {
                    expected: 0,
                    given: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = db.fetch_scalar::<i64>("SELECT ?", ()).await.unwrap_err();
        assert!(matches!(err, Error::ParameterCount { .. }), "{err:?}");
        // Nothing was inserted, and the connection works.
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await.unwrap(),
            Some(0)
        );
    });
}

#[test]
fn unknown_parameter_name_is_named_in_the_error() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let err = db
            .fetch_one("SELECT :a", named_params! { ":a": 1, ":zzz": 2 })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ParameterName { .. }), "{err:?}");
        assert!(err.to_string().contains(":zzz"), "{err}");
        // A prefixed name must match the prefix used in the SQL.
        let err = db.fetch_one("SELECT :a", named_params! { "@a": 1 }).await.unwrap_err();
        assert!(matches!(err, Error::ParameterName { .. }), "{err:?}");
        assert!(err.to_string().contains("@a"), "{err}");
        // Named values for positional parameters.
        let err = db.fetch_one("SELECT ?", named_params! { ":a": 1 }).await.unwrap_err();
        assert!(matches!(err, Error::ParameterName { .. }), "{err:?}");
        assert_eq!(db.fetch_scalar::<i64>("SELECT 1", ()).await.unwrap(), Some(1));
    });
}

#[test]
fn missing_named_value_is_parameter_name() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let err = db
            .fetch_one("SELECT :a, :b", named_params! { ":a": 1 })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ParameterName { .. }), "{err:?}");
        assert!(err.to_string().contains(":b"), "{err}");
        assert_eq!(err.sql(), Some("SELECT :a, :b"));
        let err = db
            .fetch_one("SELECT :a", named_params! { ":a": 1, "a": 2 })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ParameterName { .. }), "given twice: {err:?}");
    });
}

#[test]
fn every_value_type_round_trips() {
    on_all_runtimes(|| async {
        let db = mem().await;
        db.execute("CREATE TABLE v(x)", ()).await.unwrap();
        let big_blob: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i % 251) as u8).collect();
        let values = vec![
            Value::Null,
            Value::Integer(0),
            Value::Integer(i64::MIN),
            Value::Integer(i64::MAX),
            Value::Integer(-1),
            Value::Real(0.5),
            Value::Real(-1.25e300),
            Value::Real(f64::MAX),
            Value::Real(f64::MIN_POSITIVE),
            Value::Real(5e-324),
            Value::Real(f64::INFINITY),
            Value::Real(f64::NEG_INFINITY),
            Value::Text(String::new()),
            Value::Text("héllo wörld ✓ 🦀 日本語".into()),
            Value::Text("nul\0inside\0".into()),
            Value::Text("quotes ' \" ` ; -- /*".into()),
            Value::Blob(Vec::new()),
            Value::Blob(vec![0, 1, 2, 255, 0]),
            Value::Blob(big_blob),
        ];
        for v in &values {
            // Through a bound parameter and straight back.
            let got = db
                .fetch_scalar::<Value>("SELECT ?", [v.clone()])
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&got, v, "SELECT ?");
            // Through a table column with no affinity.
            db.execute("DELETE FROM v", ()).await.unwrap();
            db.execute("INSERT INTO v VALUES (?)", [v.clone()]).await.unwrap();
            let got = db.fetch_scalar::<Value>("SELECT x FROM v", ()).await.unwrap().unwrap();
            assert_eq!(&got, v, "stored");
            assert_eq!(got.value_type(), v.value_type());
        }
    });
}

#[test]
fn rust_types_convert_both_ways() {
    on_all_runtimes(|| async {
        let db = mem().await;
        assert_eq!(echo(&db, [true], 1).await, vec![Value::Integer(1)]);
        assert_eq!(echo(&db, [false], 1).await, vec![Value::Integer(0)]);
        assert_eq!(echo(&db, [None::<String>], 1).await, vec![Value::Null]);
        assert_eq!(echo(&db, [Some("s")], 1).await, vec![Value::Text("s".into())]);
        assert_eq!(echo(&db, [&b"ab"[..]], 1).await, vec![Value::Blob(b"ab".to_vec())]);
        assert_eq!(echo(&db, [1.5_f32], 1).await, vec![Value::Real(1.5)]);
        let row = db
            .fetch_one(
                "SELECT 1 AS t, 0 AS f, 2.5 AS r, 3 AS i, 'txt' AS s, x'00ff' AS b, NULL AS n",
                (),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(row.get::<bool>("t").unwrap());
        assert!(!row.get::<bool>("f").unwrap());
        assert_eq!(row.get::<f64>("r").unwrap(), 2.5);
        assert_eq!(row.get::<f32>("r").unwrap(), 2.5);
        assert_eq!(row.get::<f64>("i").unwrap(), 3.0, "f64 from INTEGER");
        assert_eq!(row.get::<u8>("i").unwrap(), 3);
        assert_eq!(row.get::<i32>("i").unwrap(), 3);
        assert_eq!(row.get::<u64>("i").unwrap(), 3);
        assert_eq!(row.get::<String>("s").unwrap(), "txt");
        assert_eq!(row.get::<Vec<u8>>("b").unwrap(), vec![0, 255]);
        assert_eq!(row.get::<Option<i64>>("n").unwrap(), None);
        assert_eq!(row.get::<Option<i64>>("i").unwrap(), Some(3));
        assert_eq!(row.get::<Value>("n").unwrap(), Value::Null);
    });
}

#[test]
fn row_access_by_index_and_name() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let row = db
            .fetch_one("SELECT 1 AS id, 'ann' AS Name, NULL AS note", ())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.get::<i64>(0).unwrap(), 1);
        assert_eq!(row.get::<i64>("id").unwrap(), 1);
        assert_eq!(row.get::<String>("Name").unwrap(), "ann");
        assert_eq!(row.get::<String>("name").unwrap(), "ann", "case-insensitive");
        assert_eq!(row.get::<String>("NAME").unwrap(), "ann", "case-insensitive");
        assert_eq!(row[0], Value::Integer(1));
        assert_eq!(row["name"], Value::Text("ann".into()));
        assert_eq!(row["ID"], Value::Integer(1));
        assert_eq!(row.get_value("note").unwrap(), &Value::Null);
        assert_eq!(row.len(), 3);
        assert!(!row.is_empty());
        let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
        assert_eq!(names, vec!["id", "Name", "note"]);
        assert_eq!(row.column_names().collect::<Vec<_>>(), names);
        assert_eq!(
            row.values(),
            &[Value::Integer(1), Value::Text("ann".into()), Value::Null]
        );
        assert_eq!(row.column_index("NOTE"), Some(2));
        let pairs: Vec<(&str, &Value)> = row.iter().collect();
        assert_eq!(pairs[1], ("Name", &Value::Text("ann".into())));
        let mut owned = row.clone();
        assert_eq!(owned.take::<String>("name").unwrap(), "ann");
        assert_eq!(owned[1], Value::Null, "take leaves NULL behind");
        assert_eq!(
            row.into_values(),
            vec![Value::Integer(1), Value::Text("ann".into()), Value::Null]
        );
    });
}

#[test]
fn exact_column_name_wins_over_case_insensitive_match() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let row = db.fetch_one("SELECT 1 AS a, 2 AS A", ()).await.unwrap().unwrap();
        assert_eq!(row.get::<i64>("a").unwrap(), 1);
        assert_eq!(row.get::<i64>("A").unwrap(), 2);
    });
}

#[test]
fn row_serializes_as_a_json_map() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let row = db.fetch_one("SELECT 1 AS id, 'x' AS name", ()).await.unwrap().unwrap();
        assert_eq!(serde_json::to_string(&row).unwrap(), r#"{"id":1,"name":"x"}"#);
        let row = db
            .fetch_one("SELECT NULL AS n, 2.5 AS r, x'0102' AS b", ())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::to_value(&row).unwrap(),
            serde_json::json!({"n": null, "r": 2.5, "b": [1, 2]})
        );
        let rows = db.fetch_all("SELECT 1 AS a UNION ALL SELECT 2", ()).await.unwrap();
        assert_eq!(serde_json::to_string(&rows).unwrap(), r#"[{"a":1},{"a":2}]"#);
    });
}

#[test]
fn type_mismatch_is_column_type_naming_the_column() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let row = db
            .fetch_one("SELECT 'abc' AS name, 1.5 AS r, NULL AS n", ())
            .await
            .unwrap()
            .unwrap();
        let err = row.get::<i64>("name").unwrap_err();
        match &err {
            Error::ColumnType { column, found, .. } => {
                assert!(column.contains("name"), "{column}");
                assert_eq!(*found, ValueType::Text);
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("name"), "{err}");
        assert!(matches!(
            row.get::<i64>("r"),
            Err(Error::ColumnType {
                found: ValueType::Real,
                ..
            })
        ));
        assert!(matches!(
            row.get::<String>(2),
            Err(Error::ColumnType {
                found: ValueType::Null,
                ..
            })
        ));
        assert!(matches!(row.get::<bool>("name"), Err(Error::ColumnType { .. })));
    });
}

#[test]
fn column_type_error_field_is_the_bare_column_name() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let row = db
            .fetch_one("SELECT 'abc' AS name, 300 AS big", ())
            .await
            .unwrap()
            .unwrap();
        match row.get::<i64>("name").unwrap_err() {
            Error::ColumnType { column, .. } => assert_eq!(column, "name"),
            other => panic!("{other:?}"),
        }
        match row.get::<u8>("big").unwrap_err() {
            Error::OutOfRange { column, .. } => assert_eq!(column, "big"),
            other => panic!("{other:?}"),
        }
        match row.get::<i64>("nope").unwrap_err() {
            Error::ColumnNotFound { column } => assert_eq!(column, "nope"),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn bad_index_or_name_is_column_not_found() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let row = db.fetch_one("SELECT 1 AS a", ()).await.unwrap().unwrap();
        assert!(matches!(row.get::<i64>(1), Err(Error::ColumnNotFound { .. })));
        assert!(matches!(row.get::<i64>(usize::MAX), Err(Error::ColumnNotFound { .. })));
        let err = row.get::<i64>("b").unwrap_err();
        assert!(
            matches!(&err, Error::ColumnNotFound { column } if column == "b"),
            "{err:?}"
        );
        assert!(row.get_value("b").is_err());
        let mut row = row;
        assert!(matches!(row.take::<i64>("b"), Err(Error::ColumnNotFound { .. })));
    });
}

#[test]
#[should_panic(expected = "no such column")]
fn row_index_by_unknown_name_panics() {
    futures::executor::block_on(async {
        let db = mem().await;
        let row = db.fetch_one("SELECT 1 AS a", ()).await.unwrap().unwrap();
        let _ = &row["b"];
    });
}

#[test]
fn out_of_range_integer_conversion() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let row = db.fetch_one("SELECT 300 AS v, -1 AS neg", ()).await.unwrap().unwrap();
        let err = row.get::<u8>("v").unwrap_err();
        assert!(matches!(err, Error::OutOfRange { value: 300, .. }), "{err:?}");
        assert!(err.to_string().contains("300"), "{err}");
        assert!(matches!(
            row.get::<u32>("neg"),
            Err(Error::OutOfRange { value: -1, .. })
        ));
        assert!(matches!(row.get::<u64>("neg"), Err(Error::OutOfRange { .. })));
        assert_eq!(row.get::<i16>("v").unwrap(), 300);
        let err = db.fetch_scalar::<i8>("SELECT 1000", ()).await.unwrap_err();
        assert!(matches!(err, Error::OutOfRange { value: 1000, .. }), "{err:?}");
    });
}

#[test]
fn invalid_utf8_text_is_an_error_not_a_panic() {
    on_all_runtimes(|| async {
        let db = mem().await;
        let err = db
            .fetch_one("SELECT CAST(x'ff00fe' AS TEXT) AS bad", ())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidUtf8 { column } if column.contains("bad")),
            "{err:?}"
        );
        assert_eq!(db.fetch_scalar::<i64>("SELECT 1", ()).await.unwrap(), Some(1));

        // Mid-result, in the second column: fetch_all fails whole; a cursor gives the rows
        // before the bad one (complete), then the error.
        db.execute_script(
            "CREATE TABLE u(i INTEGER, t TEXT);
             INSERT INTO u VALUES (1, 'a'), (2, CAST(x'ff' AS TEXT)), (3, 'c');",
        )
        .await
        .unwrap();
        let err = db.fetch_all("SELECT i, t FROM u ORDER BY i", ()).await.unwrap_err();
        assert!(
            matches!(&err, Error::InvalidUtf8 { column } if column == "t"),
            "{err:?}"
        );
        let mut cur = db.query("SELECT i, t FROM u ORDER BY i", ()).await.unwrap();
        let first = cur.fetch_one().await.unwrap().unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(
            (first.get::<i64>(0).unwrap(), first.get::<String>(1).unwrap()),
            (1, "a".into())
        );
        let err = cur.fetch_one().await.unwrap_err();
        assert!(matches!(err, Error::InvalidUtf8 { .. }), "{err:?}");
        drop(cur);
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM u", ()).await.unwrap(),
            Some(3)
        );
    });
}
