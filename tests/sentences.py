"""The sentences the shared fixtures synthesize (tests/conftest.py); a plain module, so that tests in any
folder can import it (a folder's own conftest.py would shadow ``conftest``)."""

# A few short sentences in the demo's domain; tests decode or featurize them.
SENTENCES = {
    "utt01": "今天是二零二四年三月五日",
    "utt02": "电话号码是一三八零零一三八零零零",
    "utt03": "下午三点四十五分开会",
    "utt04": "一共是九十九元五角",
    "utt05": "明天早上八点出发",
    "utt06": "我的号码是六六八八",
}
