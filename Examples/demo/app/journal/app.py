from journal.models import entries

if __name__ == "__main__":
    for entry_id, title, _ in entries("../data/journal.db"):
        print(entry_id, title)
